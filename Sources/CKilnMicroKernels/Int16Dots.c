#include "KilnMicroKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

/// The sum of a 256-bit vector's eight int32 lanes.
__attribute__((target("avx2"))) static inline int kiln_sum8(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/// Four rows of b against a, sixteen int16 products a step (vpmaddwd adds pairs into int32 lanes).
__attribute__((target("avx2"))) void kiln_dots_i16_avx2(
    const int16_t *a, const int16_t *b, long count, long depth, int32_t *out) {
    long j = 0;
    for (; j + 4 <= count; j += 4) {
        const int16_t *b0 = b + j * depth, *b1 = b0 + depth, *b2 = b1 + depth, *b3 = b2 + depth;
        __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
        long k = 0;
        for (; k + 16 <= depth; k += 16) {
            const __m256i x = _mm256_loadu_si256((const __m256i *)(a + k));
            s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(x, _mm256_loadu_si256((const __m256i *)(b0 + k))));
            s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(x, _mm256_loadu_si256((const __m256i *)(b1 + k))));
            s2 = _mm256_add_epi32(s2, _mm256_madd_epi16(x, _mm256_loadu_si256((const __m256i *)(b2 + k))));
            s3 = _mm256_add_epi32(s3, _mm256_madd_epi16(x, _mm256_loadu_si256((const __m256i *)(b3 + k))));
        }
        int r0 = kiln_sum8(s0), r1 = kiln_sum8(s1), r2 = kiln_sum8(s2), r3 = kiln_sum8(s3);
        for (; k < depth; k++) {
            const int x = a[k];
            r0 += x * b0[k];
            r1 += x * b1[k];
            r2 += x * b2[k];
            r3 += x * b3[k];
        }
        out[j] = r0;
        out[j + 1] = r1;
        out[j + 2] = r2;
        out[j + 3] = r3;
    }
    for (; j < count; j++) {
        const int16_t *row = b + j * depth;
        __m256i s = _mm256_setzero_si256();
        long k = 0;
        for (; k + 16 <= depth; k += 16) {
            s = _mm256_add_epi32(
                s, _mm256_madd_epi16(
                       _mm256_loadu_si256((const __m256i *)(a + k)), _mm256_loadu_si256((const __m256i *)(row + k))));
        }
        int r = kiln_sum8(s);
        for (; k < depth; k++) r += a[k] * row[k];
        out[j] = r;
    }
}

#else

void kiln_dots_i16_avx2(const int16_t *a, const int16_t *b, long count, long depth, int32_t *out) {
    __builtin_trap();
}

#endif
