#include "KilnMicroKernels.h"

#include <math.h>

/// x * Phi(x) = x (1 + erf(x / sqrt 2)) / 2, with erf from Abramowitz and Stegun 7.1.28:
/// erf(z) = 1 - (1 + a1 z + ... + a6 z^6)^-16 for z >= 0, absolute error at most 3e-7 (float rounding of
/// erff is about 6e-8). Only multiplies, adds, one division and a select, so the loop vectorizes.
#define KILN_GELU_ERF_BODY                                                                                     \
    for (long i = 0; i < count; i++) {                                                                         \
        float x = values[i];                                                                                   \
        float z = fabsf(x) * 0.70710678118654752f;                                                             \
        float t = 1.0f + z * (0.0705230784f + z * (0.0422820123f + z * (0.0092705272f +                        \
                  z * (0.0001520143f + z * (0.0002765672f + z * 0.0000430638f)))));                            \
        t = t * t;                                                                                             \
        t = t * t;                                                                                             \
        t = t * t;                                                                                             \
        t = t * t;                                                                                             \
        float e = 1.0f - 1.0f / t;                                                                             \
        values[i] = 0.5f * x * (1.0f + (x < 0.0f ? -e : e));                                                   \
    }

void kiln_gelu_erf(float *values, long count) { KILN_GELU_ERF_BODY }

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void kiln_gelu_erf_avx2(float *values, long count) { KILN_GELU_ERF_BODY }
#else
void kiln_gelu_erf_avx2(float *values, long count) { __builtin_trap(); }
#endif
