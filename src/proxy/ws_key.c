#include "proxy/ws_key.h"

#include <openssl/evp.h>

#include <string.h>
#include <sys/random.h>

/* RFC 6455 section 1.3: the GUID a server appends to the key before hashing. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int ws_key_new(char out[WS_KEY_LEN + 1])
{
    unsigned char raw[16];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return -1;
    return EVP_EncodeBlock((unsigned char *)out, raw, sizeof(raw)) == WS_KEY_LEN ? 0 : -1;
}

bool ws_accept_ok(const char *key, const char *accept, size_t accept_len)
{
    char text[WS_KEY_LEN + sizeof(ws_guid)];
    unsigned char md[EVP_MAX_MD_SIZE], want[WS_ACCEPT_LEN + 1];
    unsigned int mdlen = 0;
    size_t klen = strlen(key);
    if (klen != WS_KEY_LEN || accept_len != WS_ACCEPT_LEN)
        return false;
    memcpy(text, key, klen);
    memcpy(text + klen, ws_guid, sizeof(ws_guid) - 1);
    if (!EVP_Digest(text, klen + sizeof(ws_guid) - 1, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
        return false;
    if (EVP_EncodeBlock(want, md, (int)mdlen) != WS_ACCEPT_LEN)
        return false;
    return memcmp(want, accept, WS_ACCEPT_LEN) == 0;
}
