/* What every libFuzzer harness here shares: the entry point's prototype and INVARIANT, a check
 * that stays on in the fuzz build and aborts with file:line, so libFuzzer keeps the input. */
#ifndef GH_FUZZ_H
#define GH_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define INVARIANT(c)                                                                               \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
