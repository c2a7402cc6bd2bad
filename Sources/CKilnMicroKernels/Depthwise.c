#include "KilnMicroKernels.h"

#include <string.h>

/// Any window: row by row, each output row starts at zero and gains, for every window tap whose input row is
/// inside the image, the tap's weight times that input row (sampled at the stride). The columns a tap reaches
/// inside the image are computed once per tap, so the inner loop has no bounds checks.
#define KILN_DEPTHWISE_ROWS                                                                                    \
    for (long oy = 0; oy < oh; oy++) {                                                                         \
        float *restrict out = y + oy * ow;                                                                     \
        for (long ox = 0; ox < ow; ox++) out[ox] = 0;                                                          \
        for (long ky = 0; ky < kh; ky++) {                                                                     \
            long iy = oy * sy - py + ky * dy;                                                                  \
            if (iy < 0 || iy >= height) continue;                                                              \
            const float *restrict row = x + iy * width;                                                        \
            for (long kx = 0; kx < kw; kx++) {                                                                 \
                float tap = w[ky * kw + kx];                                                                   \
                long offset = kx * dx - px;                                                                    \
                long lo = offset >= 0 ? 0 : (-offset + sx - 1) / sx;                                           \
                long last = width - 1 - offset;                                                                \
                long hi = last < 0 ? 0 : last / sx + 1;                                                        \
                if (hi > ow) hi = ow;                                                                          \
                for (long ox = lo; ox < hi; ox++) out[ox] += tap * row[ox * sx + offset];                      \
            }                                                                                                  \
        }                                                                                                      \
    }

/// 3 x 3 at column stride SX over a zero-padded plane `p` (row stride `pw`): all nine taps per output element,
/// summed in registers, and the column loop vectorizes.
#define KILN_DEPTHWISE_3X3(SX)                                                                                 \
    for (long oy = 0; oy < oh; oy++) {                                                                         \
        const float *restrict r0 = p + oy * sy * pw;                                                           \
        const float *restrict r1 = r0 + dy * pw;                                                               \
        const float *restrict r2 = r1 + dy * pw;                                                               \
        float *restrict out = y + oy * ow;                                                                     \
        for (long ox = 0; ox < ow; ox++) {                                                                     \
            long i = ox * SX;                                                                                  \
            out[ox] = w0 * r0[i] + w1 * r0[i + dx] + w2 * r0[i + 2 * dx] + w3 * r1[i] + w4 * r1[i + dx]        \
                + w5 * r1[i + 2 * dx] + w6 * r2[i] + w7 * r2[i + dx] + w8 * r2[i + 2 * dx];                    \
        }                                                                                                      \
    }

/// The plane the 3 x 3 loops read: every pixel the windows touch, zero outside the image.
static void kiln_pad_plane(
    const float *x, long height, long width, long py, long px, float *p, long ph, long pw) {
    for (long r = 0; r < ph; r++) {
        float *dst = p + r * pw;
        long iy = r - py;
        if (iy < 0 || iy >= height) {
            memset(dst, 0, (size_t)pw * sizeof(float));
            continue;
        }
        long first = px < pw ? px : pw;
        memset(dst, 0, (size_t)first * sizeof(float));
        long count = width < pw - px ? width : pw - px;
        if (count > 0) memcpy(dst + px, x + iy * width, (size_t)count * sizeof(float));
        long done = px + (count > 0 ? count : 0);
        if (done < pw) memset(dst + done, 0, (size_t)(pw - done) * sizeof(float));
    }
}

#define KILN_DEPTHWISE_DEFINE(NAME, ATTRIBUTES)                                                                \
    ATTRIBUTES void NAME(                                                                                      \
        const float *x, long height, long width, const float *w, long kh, long kw, long sy, long sx, long py,   \
        long px, long dy, long dx, float *y, long oh, long ow, float *scratch) {                               \
        if (kh == 3 && kw == 3 && (sx == 1 || sx == 2) && py >= 0 && px >= 0) {                                \
            long ph = (oh - 1) * sy + 2 * dy + 1, pw = (ow - 1) * sx + 2 * dx + 1;                             \
            float *p = scratch;                                                                                \
            kiln_pad_plane(x, height, width, py, px, p, ph, pw);                                               \
            float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6], w7 = w[7],       \
                  w8 = w[8];                                                                                   \
            if (sx == 1) {                                                                                     \
                KILN_DEPTHWISE_3X3(1)                                                                          \
            } else {                                                                                           \
                KILN_DEPTHWISE_3X3(2)                                                                          \
            }                                                                                                  \
            return;                                                                                            \
        }                                                                                                      \
        KILN_DEPTHWISE_ROWS                                                                                    \
    }

long kiln_depthwise2d_scratch(long kh, long kw, long sy, long sx, long dy, long dx, long oh, long ow) {
    if (kh != 3 || kw != 3 || (sx != 1 && sx != 2)) return 0;
    return ((oh - 1) * sy + 2 * dy + 1) * ((ow - 1) * sx + 2 * dx + 1);
}

KILN_DEPTHWISE_DEFINE(kiln_depthwise2d, )

#if defined(__x86_64__)
KILN_DEPTHWISE_DEFINE(kiln_depthwise2d_avx2, __attribute__((target("avx2,fma"))))
#else
void kiln_depthwise2d_avx2(
    const float *x, long height, long width, const float *w, long kh, long kw, long sy, long sx, long py, long px,
    long dy, long dx, float *y, long oh, long ow, float *scratch) {
    __builtin_trap();
}
#endif
