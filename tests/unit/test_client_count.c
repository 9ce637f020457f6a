/* Per-client connection counting under churn. */
#include "check.h"
#include "core/client_count.h"

#include <arpa/inet.h>
#include <netinet/in.h>

static struct sockaddr_in v4(uint32_t host)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(host);
    return a;
}

int main(void)
{
    struct client_count t = {0};
    struct sockaddr_in a = v4(0x7f000001), b = v4(0x0a000001);
    CHECK_EQ_INT(client_count_add(&t, (struct sockaddr *)&a), 1);
    CHECK_EQ_INT(client_count_add(&t, (struct sockaddr *)&a), 2);
    CHECK_EQ_INT(client_count_add(&t, (struct sockaddr *)&b), 1);
    client_count_remove(&t, (struct sockaddr *)&a);
    CHECK_EQ_INT(client_count_add(&t, (struct sockaddr *)&a), 2);
    /* Churn: many addresses in and out; every count must stay exact. */
    static uint32_t counts[5000];
    for (int round = 0; round < 3; round++)
        for (uint32_t i = 0; i < 5000; i++) {
            struct sockaddr_in c = v4(0x0b000000 + i * 7919);
            CHECK_EQ_INT(client_count_add(&t, (struct sockaddr *)&c), ++counts[i]);
        }
    for (uint32_t i = 0; i < 5000; i += 2) {
        struct sockaddr_in c = v4(0x0b000000 + i * 7919);
        for (int k = 0; k < 3; k++)
            client_count_remove(&t, (struct sockaddr *)&c);
        counts[i] = 0;
    }
    int wrong = 0;
    for (uint32_t i = 0; i < 5000; i++) {
        struct sockaddr_in c = v4(0x0b000000 + i * 7919);
        if (client_count_add(&t, (struct sockaddr *)&c) != counts[i] + 1)
            wrong++;
    }
    CHECK_EQ_INT(wrong, 0);
    CHECK_EQ_INT(client_count_add(&t, (struct sockaddr *)&b), 2);
    client_count_fini(&t);
    return check_done("client_count");
}
