/* device_0: generated C99 for a DDNN end device; see device_0.h. */
#include <stdint.h>

#include "device_0.h"

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
    126, 7, 169, 108, 144
};
static const int16_t conv1_t[4] = {
    216, 89, 179, 152
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
    128, 126, 222, 3, 126, 205, 189, 63, 160, 8, 191, 237, 159, 246, 252, 139,
    86, 64, 55, 252, 5, 178, 123, 8, 56, 126, 252, 214, 255, 183, 214, 207,
    248, 245, 27, 128, 0, 63, 220, 224, 255, 109, 143, 59, 118, 40, 176, 57,
    208, 98, 27, 184, 236, 112, 143, 215, 239, 6, 129, 247, 173, 120, 58, 94,
    70, 71, 143, 60, 116, 4, 59, 128, 53, 1, 115, 240, 209, 127, 97, 56,
    127, 119, 245, 27, 229, 155, 10, 252, 0, 160, 66, 72, 18, 11, 248, 227,
    0, 28, 255, 4, 65, 99, 130, 247, 37, 0, 111, 112, 31, 248, 39, 115,
    231, 236, 246, 120, 254, 203, 253, 123, 16, 53, 2, 219, 192, 160, 0, 66,
    0, 1, 104, 128, 0, 202, 253, 96, 34, 196, 70, 0, 16, 98, 80, 0,
    116, 17, 2, 191, 192, 0, 62, 253, 64, 31, 239, 255, 191, 228, 255, 188,
    253, 0, 96, 22, 152, 123, 20, 16, 63, 58, 218, 67, 245, 169, 116, 63,
    233, 36, 11, 240
};
static const uint8_t head_t[150] = {
    28, 33, 38, 43, 48, 53, 58, 63, 68, 73, 78, 83, 88, 93, 98, 0,
    0, 0, 0, 10, 27, 45, 63, 81, 99, 116, 134, 141, 141, 141, 23, 30,
    36, 43, 50, 56, 63, 70, 76, 83, 90, 96, 103, 110, 116, 45, 49, 52,
    55, 58, 62, 65, 68, 72, 75, 78, 82, 85, 88, 92, 36, 41, 46, 50,
    55, 60, 64, 69, 74, 79, 83, 88, 93, 97, 102, 17, 25, 32, 39, 47,
    54, 61, 68, 76, 83, 90, 98, 105, 112, 120, 29, 33, 38, 43, 47, 52,
    57, 62, 66, 71, 76, 80, 85, 90, 95, 0, 7, 18, 30, 41, 52, 64,
    75, 86, 98, 109, 120, 132, 141, 141, 34, 38, 41, 45, 48, 52, 55, 59,
    62, 66, 69, 73, 76, 80, 83, 36, 40, 45, 50, 54, 59, 64, 68, 73,
    77, 82, 87, 91, 96, 101
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

int ddnn_device_0(const uint8_t *sensor, uint8_t *summary, uint8_t *features)
{
    if (!sensor || !summary || !features)
        return -1;
    conv1(sensor, features);
    head(features, summary);
    return 0;
}
