#include "KilnMicroKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

int kiln_cpu_features(void) {
    __builtin_cpu_init();
    int features = 0;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) features |= KILN_CPU_AVX2_FMA;
    if (__builtin_cpu_supports("avx512f")) features |= KILN_CPU_AVX512F;
    if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni")) features |= KILN_CPU_AVX512_VNNI;
    return features;
}

/// Stores an MR x (NV vectors of W floats) accumulator tile: straight into C when the tile is whole, else
/// through a scratch tile so that only the valid rows and columns are written. The epilogue, when given, applies
/// after the accumulation into C: bias, residual, clamp.
#define KILN_STORE_TILE(MR, NV, W, VEC, LOADU, STOREU, ADD, MUL, SET1, MAX, MIN)                              \
    VEC scale = SET1(alpha);                                                                                   \
    if (alpha != 1.0f) {                                                                                       \
        for (int i = 0; i < MR; i++)                                                                           \
            for (int j = 0; j < NV; j++) acc[i][j] = MUL(acc[i][j], scale);                                    \
    }                                                                                                          \
    if (rows == MR && cols == NV * W) {                                                                        \
        VEC low = SET1(epilogue ? epilogue->low : 0), high = SET1(epilogue ? epilogue->high : 0);              \
        for (int i = 0; i < MR; i++) {                                                                         \
            float *row = c + i * ldc;                                                                          \
            VEC bias = SET1(epilogue && epilogue->row_bias ? epilogue->row_bias[i] : 0);                       \
            const float *residual = epilogue && epilogue->residual                                             \
                ? epilogue->residual + i * epilogue->residual_stride : 0;                                      \
            for (int j = 0; j < NV; j++) {                                                                     \
                VEC v = accumulate ? ADD(LOADU(row + j * W), acc[i][j]) : acc[i][j];                           \
                if (epilogue) {                                                                                \
                    if (epilogue->row_bias) v = ADD(v, bias);                                                  \
                    if (epilogue->column_bias) v = ADD(v, LOADU(epilogue->column_bias + j * W));               \
                    if (residual) v = ADD(v, LOADU(residual + j * W));                                         \
                    if (epilogue->clamps) v = MIN(high, MAX(low, v));                                          \
                }                                                                                              \
                STOREU(row + j * W, v);                                                                        \
            }                                                                                                  \
        }                                                                                                      \
        return;                                                                                                \
    }                                                                                                          \
    float tile[MR * NV * W];                                                                                   \
    for (int i = 0; i < MR; i++)                                                                               \
        for (int j = 0; j < NV; j++) STOREU(tile + i * NV * W + j * W, acc[i][j]);                             \
    for (long i = 0; i < rows; i++) {                                                                          \
        float *row = c + i * ldc;                                                                              \
        for (long j = 0; j < cols; j++) {                                                                      \
            float v = accumulate ? row[j] + tile[i * NV * W + j] : tile[i * NV * W + j];                       \
            if (epilogue) v = kiln_finish(v, epilogue, i, j);                                                  \
            row[j] = v;                                                                                        \
        }                                                                                                      \
    }

/// The epilogue on one element, in the order and with the comparisons of the vector path.
static inline float kiln_finish(float v, const kiln_tile_epilogue *epilogue, long i, long j) {
    if (epilogue->row_bias) v += epilogue->row_bias[i];
    if (epilogue->column_bias) v += epilogue->column_bias[j];
    if (epilogue->residual) v += epilogue->residual[i * epilogue->residual_stride + j];
    if (epilogue->clamps) {
        v = epilogue->low > v ? epilogue->low : v;
        v = epilogue->high < v ? epilogue->high : v;
    }
    return v;
}

/// One micro-kernel: MR rows of A broadcast against NV vectors of B per depth step, accumulated with FMA.
#define KILN_SGEMM_KERNEL(                                                                                      \
    NAME, TARGET, MR, NV, W, VEC, ZERO, LOADU, STOREU, BCAST, FMA, ADD, MUL, SET1, MAX, MIN)                   \
    __attribute__((target(TARGET))) void NAME(                                                                 \
        long depth, const float *a, const float *b, float *c, long ldc, long rows, long cols, float alpha,      \
        int accumulate, const kiln_tile_epilogue *epilogue) {                                                  \
        VEC acc[MR][NV];                                                                                       \
        _Pragma("clang loop unroll(full)") for (int i = 0; i < MR; i++)                                        \
            _Pragma("clang loop unroll(full)") for (int j = 0; j < NV; j++) acc[i][j] = ZERO();                \
        for (long k = 0; k < depth; k++) {                                                                     \
            VEC bv[NV];                                                                                        \
            _Pragma("clang loop unroll(full)") for (int j = 0; j < NV; j++) bv[j] = LOADU(b + j * W);          \
            _Pragma("clang loop unroll(full)") for (int i = 0; i < MR; i++) {                                  \
                VEC x = BCAST(a + i);                                                                          \
                _Pragma("clang loop unroll(full)") for (int j = 0; j < NV; j++) acc[i][j] =                    \
                    FMA(x, bv[j], acc[i][j]);                                                                  \
            }                                                                                                  \
            a += MR;                                                                                           \
            b += NV * W;                                                                                       \
        }                                                                                                      \
        KILN_STORE_TILE(MR, NV, W, VEC, LOADU, STOREU, ADD, MUL, SET1, MAX, MIN)                               \
    }

#define KILN_AVX2(NAME, MR, NV)                                                                                \
    KILN_SGEMM_KERNEL(                                                                                         \
        NAME, "avx2,fma", MR, NV, 8, __m256, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_storeu_ps,             \
        _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_add_ps, _mm256_mul_ps, _mm256_set1_ps, _mm256_max_ps,     \
        _mm256_min_ps)
#define KILN_AVX512(NAME, MR, NV)                                                                              \
    KILN_SGEMM_KERNEL(                                                                                         \
        NAME, "avx512f", MR, NV, 16, __m512, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_storeu_ps,             \
        kiln_broadcast512, _mm512_fmadd_ps, _mm512_add_ps, _mm512_mul_ps, _mm512_set1_ps, _mm512_max_ps,       \
        _mm512_min_ps)

__attribute__((target("avx512f"))) static inline __m512 kiln_broadcast512(const float *p) {
    return _mm512_set1_ps(*p);
}

KILN_AVX2(kiln_sgemm_avx2_6x16, 6, 2)
KILN_AVX512(kiln_sgemm_avx512_12x32, 12, 2)
KILN_AVX512(kiln_sgemm_avx512_24x16, 24, 1)

#else

// Other architectures run the portable Swift kernel only; these are never called there.
int kiln_cpu_features(void) { return 0; }

static void kiln_unavailable(void) { __builtin_trap(); }

void kiln_sgemm_avx2_6x16(
    long depth, const float *a, const float *b, float *c, long ldc, long rows, long cols, float alpha,
    int accumulate, const kiln_tile_epilogue *epilogue) {
    kiln_unavailable();
}
void kiln_sgemm_avx512_12x32(
    long depth, const float *a, const float *b, float *c, long ldc, long rows, long cols, float alpha,
    int accumulate, const kiln_tile_epilogue *epilogue) {
    kiln_unavailable();
}
void kiln_sgemm_avx512_24x16(
    long depth, const float *a, const float *b, float *c, long ldc, long rows, long cols, float alpha,
    int accumulate, const kiln_tile_epilogue *epilogue) {
    kiln_unavailable();
}

#endif
