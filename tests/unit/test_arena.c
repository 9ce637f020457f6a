/* core/arena: allocations from the embedded first block cost no malloc, are aligned and do not
 * overlap; growth chains blocks up to the cap; gh_arena_grow extends the latest allocation in place
 * and copies anything else; gh_arena_fini frees the chained blocks (ASan's leak check in
 * `make asan` proves it). */
#include "check.h"
#include "core/arena.h"

#include <stdint.h>

static void test_first_block(void)
{
    _Alignas(16) char first[1024];
    struct gh_arena a;
    gh_arena_init(&a, first + 1, sizeof(first) - 1, 0); /* misaligned on purpose; no heap at all */
    char *p = gh_arena_alloc(&a, 10), *q = gh_arena_alloc(&a, 1);
    CHECK(p && q);
    CHECK((uintptr_t)p % ARENA_ALIGN == 0 && (uintptr_t)q % ARENA_ALIGN == 0);
    CHECK(p >= first && q >= p + 10 && q < first + sizeof(first));
    CHECK_EQ_INT(a.heap, 0);
    CHECK(gh_arena_alloc(&a, 2000) == NULL); /* cap 0: the first block is all there is */
    CHECK(gh_arena_alloc(&a, 100) != NULL);  /* a failure changes nothing */
    gh_arena_fini(&a);
}

static void test_chain_and_cap(void)
{
    struct gh_arena a;
    gh_arena_init(&a, NULL, 0, 3 * ARENA_BLOCK_MIN);
    char *p = gh_arena_alloc(&a, 100);
    CHECK(p != NULL);
    memset(p, 'a', 100);
    CHECK_EQ_INT(a.heap, ARENA_BLOCK_MIN);
    char *q = gh_arena_alloc(&a, ARENA_BLOCK_MIN); /* does not fit: a second block, trimmed */
    CHECK(q != NULL);
    memset(q, 'b', ARENA_BLOCK_MIN);
    CHECK_EQ_INT(a.heap, 3 * ARENA_BLOCK_MIN);
    CHECK(p[99] == 'a');                                    /* the first block stays */
    CHECK(gh_arena_alloc(&a, ARENA_BLOCK_MIN * 2) == NULL); /* past the cap */
    CHECK(gh_arena_alloc(&a, ARENA_BLOCK_MIN / 2) != NULL); /* the room left is still used */
    CHECK(gh_arena_alloc(&a, SIZE_MAX - 4) == NULL);        /* rounding overflow */
    gh_arena_fini(&a);
    CHECK_EQ_INT(a.heap, 0);
    CHECK(a.blocks == NULL);
}

static void test_grow(void)
{
    _Alignas(16) char first[256];
    struct gh_arena a;
    gh_arena_init(&a, first, sizeof(first), 1 << 20);
    char *p = gh_arena_grow(&a, NULL, 0, 32); /* NULL: a new allocation */
    CHECK(p == first);
    memcpy(p, "0123456789", 10);
    char *g = gh_arena_grow(&a, p, 32, 128); /* the latest, with room: in place */
    CHECK(g == p);
    CHECK(gh_arena_grow(&a, g, 128, 64) == g); /* shrinking keeps it */
    char *other = gh_arena_alloc(&a, 16);
    CHECK(other == first + 128);
    char *h = gh_arena_grow(&a, g, 128, 200); /* no longer the latest: copied */
    CHECK(h != NULL && h != g && memcmp(h, "0123456789", 10) == 0);
    CHECK(a.heap > 0); /* 200 bytes did not fit in what was left of the first block */
    char *k = gh_arena_grow(&a, h, 200, 3000); /* the latest in a chained block: in place */
    CHECK(k == h && memcmp(k, "0123456789", 10) == 0);
    gh_arena_fini(&a);
}

int main(void)
{
    test_first_block();
    test_chain_and_cap();
    test_grow();
    return check_done("arena");
}
