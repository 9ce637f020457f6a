/* OCSP stapling: reads the DER OCSP response configured for a certificate (`ocsp`), checks
 * that it is a successful answer about that certificate, and staples it in the handshake of
 * clients that ask, until its nextUpdate. */
#include "net/tls_internal.h"
#include "config/config.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- OCSP responses ---- */

/* Whether `id` names certificate x: the same serial number, and an issuer name hash that
 * matches x's issuer. The issuer's key hash would need the issuer certificate, which the
 * chain file need not hold: the name and the serial are what tells certificates apart. */
static bool ocsp_id_is(OCSP_CERTID *id, X509 *x)
{
    ASN1_OCTET_STRING *name_hash = NULL;
    ASN1_OBJECT *alg = NULL;
    ASN1_INTEGER *serial = NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    const EVP_MD *type;

    if (!OCSP_id_get0_info(&name_hash, &alg, NULL, &serial, id) || !serial || !name_hash)
        return false;
    if (ASN1_INTEGER_cmp(serial, X509_get0_serialNumber(x)) != 0)
        return false;
    type = EVP_get_digestbyobj(alg);
    return type && X509_NAME_digest(X509_get_issuer_name(x), type, md, &mdlen) &&
           (int)mdlen == ASN1_STRING_length(name_hash) &&
           !memcmp(md, ASN1_STRING_get0_data(name_hash), mdlen);
}

/* The nextUpdate of the single response for x, as a time_t (0: none given), or -1 when the
 * response has no answer for x. */
static time_t ocsp_answer_for(OCSP_BASICRESP *basic, X509 *x)
{
    for (int i = 0; i < OCSP_resp_count(basic); i++) {
        OCSP_SINGLERESP *one = OCSP_resp_get0(basic, i);
        ASN1_GENERALIZEDTIME *next = NULL;
        struct tm tm;

        if (!ocsp_id_is((OCSP_CERTID *)OCSP_SINGLERESP_get0_id(one), x))
            continue;
        if (OCSP_single_get0_status(one, NULL, NULL, NULL, &next) < 0)
            return -1;
        if (!next || !ASN1_TIME_to_tm(next, &tm))
            return 0;
        return timegm(&tm);
    }
    return -1;
}

/* Reads a DER OCSP response for the certificate tc and keeps it to staple. Its signature is
 * the client's to check; here we make sure it is an OCSP response, a successful one, and one
 * about this certificate. */
int tls_load_ocsp(struct tls_cert *tc, const struct cfg_tls_cert *cc, char *why, size_t whylen)
{
    size_t len;
    char *der = tls_read_file(cc->ocsp, &len, why, whylen);
    const unsigned char *p = (const unsigned char *)der;
    OCSP_RESPONSE *resp = der ? d2i_OCSP_RESPONSE(NULL, &p, (long)len) : NULL;
    OCSP_BASICRESP *basic = NULL;
    int status, rc = -1;

    if (!der)
        return -1;
    if (!resp || p != (const unsigned char *)der + len) {
        snprintf(why, whylen, "not a DER OCSP response");
    } else if ((status = OCSP_response_status(resp)) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        snprintf(why, whylen, "its status is '%s', not 'successful'",
                 OCSP_response_status_str(status));
    } else if (!(basic = OCSP_response_get1_basic(resp))) {
        snprintf(why, whylen, "no basic OCSP response in it");
    } else if ((tc->ocsp_until = ocsp_answer_for(basic, tc->x509)) < 0) {
        snprintf(why, whylen, "it is not about the certificate %s", cc->cert);
    } else if (!(tc->ocsp = OPENSSL_memdup(der, len))) {
        snprintf(why, whylen, "out of memory");
    } else {
        tc->ocsp_len = len;
        rc = 0;
    }
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
    free(der);
    ERR_clear_error();
    return rc;
}

/* ---- OCSP stapling ---- */

/* Runs when the client asked for the certificate's status, once the certificate is chosen
 * (SSL_get_certificate is it). No response, or an expired one, staples nothing: an expired
 * response would make a careful client refuse a good certificate. */
int tls_on_status(SSL *ssl, void *arg)
{
    const struct tls_server *s = arg;
    const X509 *x = SSL_get_certificate(ssl);
    const struct tls_cert *tc = NULL;
    unsigned char *copy;

    for (size_t i = 0; x && i < s->ncerts && !tc; i++) {
        if (s->certs[i].x509 == x)
            tc = &s->certs[i];
    }
    if (!tc || !tc->ocsp || (tc->ocsp_until && time(NULL) >= tc->ocsp_until))
        return SSL_TLSEXT_ERR_NOACK;
    copy = OPENSSL_memdup(tc->ocsp, tc->ocsp_len);
    if (!copy)
        return SSL_TLSEXT_ERR_NOACK;
    if (!SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)tc->ocsp_len)) { /* takes `copy` */
        OPENSSL_free(copy);
        return SSL_TLSEXT_ERR_NOACK;
    }
    return SSL_TLSEXT_ERR_OK;
}
