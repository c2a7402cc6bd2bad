#ifndef KILN_MICRO_KERNELS_H
#define KILN_MICRO_KERNELS_H

#include <stdint.h>

/// Register-tiled SGEMM micro-kernels for the CPU backend's instruction sets beyond the baseline target, each
/// compiled for its own instruction set and chosen at run time (never called where the CPU lacks it).
///
/// Every kernel computes one tile of C, `rows` x `cols` (at most its MR x NR), from packed operands:
/// `a` holds `depth` steps of MR floats (one step: a column of the A tile), `b` holds `depth` steps of NR
/// floats (one step: a row of the B tile). C is row-major with row stride `ldc`; the tile is scaled by `alpha`
/// and added to C when `accumulate` is nonzero, else it replaces C. Then, when `epilogue` is not NULL (the last
/// depth block), the epilogue applies to the tile while it is in registers.

/// Instruction sets this CPU and its operating system support: a set of the flags below.
#define KILN_CPU_AVX2_FMA 1
#define KILN_CPU_AVX512F 2
/// AVX-512BW with the VNNI dot-product instructions (vpdpwssd).
#define KILN_CPU_AVX512_VNNI 4
int kiln_cpu_features(void);

/// What a tile gets after its product, in this order: a bias per row, a bias per column, a residual laid out
/// like C, a clamp to [low, high] (ReLU is [0, +inf]). Clamping keeps NaN, as the standalone kernels do.
typedef struct {
    const float *row_bias;     // the bias of the tile's first row, or NULL
    const float *column_bias;  // the bias of the tile's first column, or NULL
    const float *residual;  // the residual at the tile's top-left element, or NULL
    long residual_stride;
    int clamps;
    float low, high;
} kiln_tile_epilogue;

typedef void (*kiln_sgemm_tile)(
    long depth, const float *a, const float *b, float *c, long ldc, long rows, long cols, float alpha,
    int accumulate, const kiln_tile_epilogue *epilogue);

/// AVX2 with FMA: 6 x 16 (12 accumulators of 8 floats).
void kiln_sgemm_avx2_6x16(
    long depth, const float *a, const float *b, float *c, long ldc, long rows, long cols, float alpha,
    int accumulate, const kiln_tile_epilogue *epilogue);
/// AVX-512: 12 x 32 (24 accumulators of 16 floats).
void kiln_sgemm_avx512_12x32(
    long depth, const float *a, const float *b, float *c, long ldc, long rows, long cols, float alpha,
    int accumulate, const kiln_tile_epilogue *epilogue);
/// AVX-512: 24 x 16 (24 accumulators; narrow panels waste less where C has few columns).
void kiln_sgemm_avx512_24x16(
    long depth, const float *a, const float *b, float *c, long ldc, long rows, long cols, float alpha,
    int accumulate, const kiln_tile_epilogue *epilogue);

/// out[j] = the dot product of `a` and row j of `b` (`count` rows of `depth` int16 values, one after the other),
/// in int32: the int8 layers' products, sixteen a step with AVX2 (vpmaddwd). The caller keeps the sums in range
/// (|a| <= 255, |b| <= 128, depth at most 65,793) and calls it only where the CPU has AVX2.
void kiln_dots_i16_avx2(const int16_t *a, const int16_t *b, long count, long depth, int32_t *out);
/// The same with AVX-512 VNNI: thirty-two products a step, each pair's sum added by the product instruction.
void kiln_dots_i16_avx512vnni(const int16_t *a, const int16_t *b, long count, long depth, int32_t *out);
/// Four rows of a (`lda` apart) at once: `out[i * ldo + j] = a_i · b_j` for i < 4, j < count; each load of a or b
/// feeds several products, where one row at a time streams all of b per row.
void kiln_dots4_i16_avx512vnni(
    const int16_t *a, long lda, const int16_t *b, long count, long depth, int32_t *out, long ldo);
void kiln_dots4_i16_avx2(const int16_t *a, long lda, const int16_t *b, long count, long depth, int32_t *out, long ldo);

/// One channel of a depthwise 2-D convolution, NCHW: `y` (oh x ow) = the `kh` x `kw` window `w` slid over
/// `x` (height x width) with strides (sy, sx), leading pads (py, px) and dilations (dy, dx); pixels outside
/// the image count as zero. 3 x 3 windows at column stride 1 or 2 run over a zero-padded copy of the plane in
/// `scratch` (`kiln_depthwise2d_scratch` floats; none for other windows). The AVX2 version needs AVX2 and FMA;
/// the portable one runs anywhere.
long kiln_depthwise2d_scratch(long kh, long kw, long sy, long sx, long dy, long dx, long oh, long ow);
void kiln_depthwise2d(
    const float *x, long height, long width, const float *w, long kh, long kw, long sy, long sx, long py, long px,
    long dy, long dx, float *y, long oh, long ow, float *scratch);
void kiln_depthwise2d_avx2(
    const float *x, long height, long width, const float *w, long kh, long kw, long sy, long sx, long py, long px,
    long dy, long dx, float *y, long oh, long ow, float *scratch);

/// GELU (the erf form) in place over `count` floats, vectorized; within 3e-7 (absolute, on erf) of the
/// libm formula. The AVX2 version needs AVX2 and FMA.
void kiln_gelu_erf(float *values, long count);
void kiln_gelu_erf_avx2(float *values, long count);

#endif
