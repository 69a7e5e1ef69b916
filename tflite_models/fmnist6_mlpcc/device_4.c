/* device_4: generated C99 for a DDNN end device; see device_4.h. */
#include <stdint.h>

#include "device_4.h"

static unsigned get_bit(const uint8_t *p, unsigned i)
{
    return (p[i >> 3] >> (7u - (i & 7u))) & 1u;
}

static void set_bit(uint8_t *p, unsigned i)
{
    p[i >> 3] = (uint8_t)(p[i >> 3] | (0x80u >> (i & 7u)));
}

static void clear_bytes(uint8_t *p, unsigned n)
{
    unsigned i;
    for (i = 0; i < n; i++)
        p[i] = 0;
}

/* Bits where a and b differ, over n bytes (padding bits are zero in both). */
static unsigned mismatches(const uint8_t *a, const uint8_t *b, unsigned n)
{
    unsigned i, total = 0;
    for (i = 0; i < n; i++) {
        unsigned v = (unsigned)(a[i] ^ b[i]);
        v = v - ((v >> 1) & 0x55u);
        v = (v & 0x33u) + ((v >> 2) & 0x33u);
        total += (v + (v >> 4)) & 0x0Fu;
    }
    return total;
}

/* conv1: 3x3 binary convolution (real input 10x14x1, 4 filters),
 * 3x3/2 max-pool -> 5x7x4, batch norm, sign. s = the sum of the +-weighted inputs, zero border;
 * integer thresholds. The conv rows a pooled row
 * needs are kept in a ring of 3 rows; each input row is read once into a padded row. */
static const uint8_t conv1_w[5] = {
    178, 36, 139, 46, 192
};
static const int16_t conv1_t[4] = {
    50, -48, 99, 188
};
static const uint8_t conv1_up[4] = {
    1, 1, 1, 1
};

static void conv1(const uint8_t *in, uint8_t *out)
{
    int16_t ring[3][14];
    int16_t pad[16];
    uint8_t wb[9];
    unsigned fo, k, ci;
    int oy, ox, kx, x;
    clear_bytes(out, 18u);
    for (fo = 0; fo < 4u; fo++) {
        int next = 0;
        for (k = 0; k < 9u; k++)
            wb[k] = (uint8_t)get_bit(conv1_w, fo * 9u + k);
        for (oy = 0; oy < 5; oy++) {
            int y0 = oy * 2 - 0, y1 = y0 + 2;
            if (y0 < 0)
                y0 = 0;
            if (y1 > 9)
                y1 = 9;
            for (; next <= y1; next++) { /* conv row `next`: taps outer, x inner */
                int16_t *r = ring[next % 3];
                int ky;
                for (x = 0; x < 14; x++)
                    r[x] = 0;
                k = 0;
                for (ky = 0; ky < 3; ky++) {
                    int iy = next + ky - 1;
                    if (iy < 0 || iy >= 10) {
                        k += 3u; /* a zero border row adds nothing */
                        continue;
                    }
                    for (ci = 0; ci < 1u; ci++) {
                        pad[ci] = 0;
                        pad[15u + ci] = 0;
                        for (x = 0; x < 14; x++)
                            pad[(unsigned)(x + 1) * 1u + ci] = (int16_t)in[((unsigned)iy * 14u + (unsigned)x) * 1u + ci];
                    }
                    for (kx = 0; kx < 3; kx++) {
                        for (ci = 0; ci < 1u; ci++, k++) {
                            const int16_t *p = pad + (unsigned)kx * 1u + ci;
                            if (wb[k]) {
                                for (x = 0; x < 14; x++)
                                    r[x] = (int16_t)(r[x] + p[x * 1u]);
                            } else {
                                for (x = 0; x < 14; x++)
                                    r[x] = (int16_t)(r[x] - p[x * 1u]);
                            }
                        }
                    }
                }
            }
            for (ox = 0; ox < 7; ox++) {
                int x0 = ox * 2 - 0, x1 = x0 + 2, y;
                int16_t best = -32768;
                if (x0 < 0)
                    x0 = 0;
                if (x1 > 13)
                    x1 = 13;
                for (y = y0; y <= y1; y++) {
                    const int16_t *row = ring[y % 3];
                    for (x = x0; x <= x1; x++)
                        if (row[x] > best)
                            best = row[x];
                }
                if (conv1_up[fo] ? best >= conv1_t[fo] : best <= conv1_t[fo])
                    set_bit(out, ((unsigned)oy * 7u + (unsigned)ox) * 4u + fo);
            }
        }
    }
}

/* head: binary dense 140 -> 10 classes, batch norm folded, int4 summary; integer thresholds. */
static const uint8_t head_w[180] = {
    223, 115, 205, 155, 155, 16, 251, 236, 16, 79, 187, 220, 80, 245, 60, 137,
    69, 176, 100, 107, 217, 96, 166, 252, 161, 38, 125, 242, 103, 167, 254, 69,
    223, 252, 0, 48, 60, 131, 220, 154, 12, 108, 168, 98, 0, 12, 128, 2,
    112, 137, 150, 191, 67, 32, 255, 126, 201, 47, 119, 8, 60, 166, 121, 64,
    110, 187, 241, 102, 152, 64, 157, 208, 0, 54, 3, 112, 15, 82, 7, 4,
    130, 192, 80, 10, 186, 75, 98, 10, 8, 208, 25, 196, 118, 241, 202, 33,
    217, 76, 36, 4, 64, 235, 117, 183, 36, 191, 191, 208, 191, 91, 96, 103,
    216, 14, 3, 219, 66, 66, 112, 12, 123, 5, 0, 0, 153, 208, 223, 219,
    253, 175, 212, 206, 58, 221, 98, 112, 127, 138, 51, 253, 124, 185, 253, 208,
    128, 142, 237, 140, 14, 0, 234, 128, 125, 78, 132, 15, 237, 246, 0, 144,
    23, 32, 39, 91, 135, 146, 125, 158, 40, 174, 196, 230, 203, 96, 39, 249,
    189, 203, 47, 160
};
static const uint8_t head_t[150] = {
    17, 23, 30, 36, 42, 49, 55, 61, 68, 74, 81, 87, 93, 100, 106, 19,
    27, 34, 41, 49, 56, 64, 71, 78, 86, 93, 101, 108, 115, 123, 17, 24,
    31, 37, 44, 51, 58, 64, 71, 78, 85, 91, 98, 105, 112, 27, 33, 39,
    44, 50, 56, 62, 68, 73, 79, 85, 91, 97, 102, 108, 25, 32, 39, 46,
    53, 59, 66, 73, 80, 87, 94, 100, 107, 114, 121, 16, 23, 31, 39, 47,
    55, 63, 70, 78, 86, 94, 102, 110, 117, 125, 24, 31, 37, 44, 50, 57,
    63, 70, 76, 83, 89, 95, 102, 108, 115, 17, 24, 31, 38, 44, 51, 58,
    65, 72, 79, 86, 92, 99, 106, 113, 7, 16, 24, 32, 41, 49, 57, 66,
    74, 82, 91, 99, 107, 116, 124, 25, 30, 36, 41, 46, 52, 57, 63, 68,
    74, 79, 85, 90, 95, 101
};

static void head(const uint8_t *in, uint8_t *summary)
{
    unsigned j;
    clear_bytes(summary, 5u);
    for (j = 0; j < 10u; j++) {
        int32_t agree = 140 - (int32_t)mismatches(in, head_w + j * 18u, 18u);
        int q = -8;
        unsigned t;
        for (t = 0; t < 15u; t++)
            q += agree >= (int32_t)head_t[j * 15u + t];
        summary[j >> 1] = (uint8_t)(summary[j >> 1] | (((unsigned)q & 0xFu) << ((j & 1u) * 4u)));
    }
}

int ddnn_device_4(const uint8_t *sensor, uint8_t *summary, uint8_t *features)
{
    if (!sensor || !summary || !features)
        return -1;
    conv1(sensor, features);
    head(features, summary);
    return 0;
}
