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

#define KILN_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

/// `sum += a[k..<k+n] · row[k..<k+n]` for n = depth - k < 32 (masked loads read nothing past the end).
KILN_VNNI static inline __m512i kiln_tail_dpwssd(__m512i sum, __m512i x, const int16_t *row, __mmask32 mask) {
    return _mm512_dpwssd_epi32(sum, x, _mm512_maskz_loadu_epi16(mask, row));
}

KILN_VNNI void kiln_dots_i16_avx512vnni(const int16_t *a, const int16_t *b, long count, long depth, int32_t *out) {
    const long whole = depth / 32 * 32;
    const __mmask32 mask = (__mmask32)((1ull << (depth - whole)) - 1);
    const __m512i tail = _mm512_maskz_loadu_epi16(mask, a + whole);
    long j = 0;
    for (; j + 4 <= count; j += 4) {
        const int16_t *b0 = b + j * depth, *b1 = b0 + depth, *b2 = b1 + depth, *b3 = b2 + depth;
        __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
        for (long k = 0; k < whole; k += 32) {
            const __m512i x = _mm512_loadu_si512(a + k);
            s0 = _mm512_dpwssd_epi32(s0, x, _mm512_loadu_si512(b0 + k));
            s1 = _mm512_dpwssd_epi32(s1, x, _mm512_loadu_si512(b1 + k));
            s2 = _mm512_dpwssd_epi32(s2, x, _mm512_loadu_si512(b2 + k));
            s3 = _mm512_dpwssd_epi32(s3, x, _mm512_loadu_si512(b3 + k));
        }
        if (mask) {
            s0 = kiln_tail_dpwssd(s0, tail, b0 + whole, mask);
            s1 = kiln_tail_dpwssd(s1, tail, b1 + whole, mask);
            s2 = kiln_tail_dpwssd(s2, tail, b2 + whole, mask);
            s3 = kiln_tail_dpwssd(s3, tail, b3 + whole, mask);
        }
        out[j] = _mm512_reduce_add_epi32(s0);
        out[j + 1] = _mm512_reduce_add_epi32(s1);
        out[j + 2] = _mm512_reduce_add_epi32(s2);
        out[j + 3] = _mm512_reduce_add_epi32(s3);
    }
    for (; j < count; j++) {
        const int16_t *row = b + j * depth;
        __m512i s = _mm512_setzero_si512();
        for (long k = 0; k < whole; k += 32) {
            s = _mm512_dpwssd_epi32(s, _mm512_loadu_si512(a + k), _mm512_loadu_si512(row + k));
        }
        if (mask) s = kiln_tail_dpwssd(s, tail, row + whole, mask);
        out[j] = _mm512_reduce_add_epi32(s);
    }
}

/// Four rows of a against four rows of b at a time: each load of either feeds four products.
KILN_VNNI void kiln_dots4_i16_avx512vnni(
    const int16_t *a, long lda, const int16_t *b, long count, long depth, int32_t *out, long ldo) {
    const long whole = depth / 32 * 32;
    const __mmask32 mask = (__mmask32)((1ull << (depth - whole)) - 1);
    const int16_t *rows[4] = {a, a + lda, a + 2 * lda, a + 3 * lda};
    long j = 0;
    for (; j + 4 <= count; j += 4) {
        __m512i s[4][4];
        for (int i = 0; i < 4; i++)
            for (int c = 0; c < 4; c++) s[i][c] = _mm512_setzero_si512();
        for (long k = 0; k < whole + (mask ? 32 : 0); k += 32) {
            const __mmask32 m = k < whole ? (__mmask32)0xFFFFFFFF : mask;
            __m512i x[4];
            for (int i = 0; i < 4; i++) x[i] = _mm512_maskz_loadu_epi16(m, rows[i] + k);
            for (int c = 0; c < 4; c++) {
                const __m512i y = _mm512_maskz_loadu_epi16(m, b + (j + c) * depth + k);
                for (int i = 0; i < 4; i++) s[i][c] = _mm512_dpwssd_epi32(s[i][c], x[i], y);
            }
        }
        for (int i = 0; i < 4; i++)
            for (int c = 0; c < 4; c++) out[i * ldo + j + c] = _mm512_reduce_add_epi32(s[i][c]);
    }
    for (int i = 0; i < 4 && j < count; i++) kiln_dots_i16_avx512vnni(rows[i], b + j * depth, count - j, depth, out + i * ldo + j);
}

/// Four rows of a against two rows of b at a time with AVX2 (eight accumulators of sixteen registers).
__attribute__((target("avx2"))) void kiln_dots4_i16_avx2(
    const int16_t *a, long lda, const int16_t *b, long count, long depth, int32_t *out, long ldo) {
    const long whole = depth / 16 * 16;
    const int16_t *rows[4] = {a, a + lda, a + 2 * lda, a + 3 * lda};
    long j = 0;
    for (; j + 2 <= count; j += 2) {
        const int16_t *b0 = b + j * depth, *b1 = b0 + depth;
        __m256i s[4][2];
        for (int i = 0; i < 4; i++) s[i][0] = s[i][1] = _mm256_setzero_si256();
        for (long k = 0; k < whole; k += 16) {
            const __m256i y0 = _mm256_loadu_si256((const __m256i *)(b0 + k));
            const __m256i y1 = _mm256_loadu_si256((const __m256i *)(b1 + k));
            for (int i = 0; i < 4; i++) {
                const __m256i x = _mm256_loadu_si256((const __m256i *)(rows[i] + k));
                s[i][0] = _mm256_add_epi32(s[i][0], _mm256_madd_epi16(x, y0));
                s[i][1] = _mm256_add_epi32(s[i][1], _mm256_madd_epi16(x, y1));
            }
        }
        for (int i = 0; i < 4; i++) {
            int r0 = kiln_sum8(s[i][0]), r1 = kiln_sum8(s[i][1]);
            for (long k = whole; k < depth; k++) {
                r0 += rows[i][k] * b0[k];
                r1 += rows[i][k] * b1[k];
            }
            out[i * ldo + j] = r0;
            out[i * ldo + j + 1] = r1;
        }
    }
    for (int i = 0; i < 4 && j < count; i++) kiln_dots_i16_avx2(rows[i], b + j * depth, count - j, depth, out + i * ldo + j);
}

#else

void kiln_dots4_i16_avx512vnni(
    const int16_t *a, long lda, const int16_t *b, long count, long depth, int32_t *out, long ldo) {
    __builtin_trap();
}

void kiln_dots4_i16_avx2(
    const int16_t *a, long lda, const int16_t *b, long count, long depth, int32_t *out, long ldo) {
    __builtin_trap();
}

void kiln_dots_i16_avx512vnni(const int16_t *a, const int16_t *b, long count, long depth, int32_t *out) {
    __builtin_trap();
}

void kiln_dots_i16_avx2(const int16_t *a, const int16_t *b, long count, long depth, int32_t *out) {
    __builtin_trap();
}

#endif
