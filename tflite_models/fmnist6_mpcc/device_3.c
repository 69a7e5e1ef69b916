/* device_3: generated C99 for a DDNN end device; see device_3.h. */
#include <stdint.h>

#include "device_3.h"

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
    127, 0, 105, 24, 144
};
static const int16_t conv1_t[4] = {
    620, -344, -138, 30
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
    104, 187, 159, 50, 24, 255, 61, 207, 6, 73, 200, 17, 102, 234, 6, 180,
    116, 224, 184, 158, 100, 31, 141, 106, 194, 248, 101, 67, 159, 198, 167, 14,
    249, 103, 173, 96, 160, 25, 198, 64, 3, 156, 108, 229, 59, 102, 130, 15,
    156, 86, 70, 185, 132, 64, 129, 246, 96, 200, 130, 102, 206, 163, 100, 124,
    9, 42, 102, 92, 250, 148, 71, 192, 176, 136, 102, 1, 41, 134, 108, 135,
    88, 198, 161, 239, 132, 110, 181, 125, 212, 96, 46, 237, 250, 149, 110, 239,
    255, 125, 207, 245, 247, 253, 253, 141, 223, 223, 153, 144, 32, 143, 81, 64,
    56, 117, 220, 1, 143, 166, 196, 40, 230, 79, 38, 188, 103, 192, 212, 103,
    127, 99, 149, 207, 153, 130, 176, 137, 14, 170, 186, 187, 37, 64, 85, 16,
    103, 114, 104, 150, 246, 98, 185, 204, 220, 30, 184, 144, 137, 181, 136, 138,
    231, 96, 146, 152, 8, 247, 198, 131, 21, 166, 196, 169, 64, 143, 83, 136,
    63, 85, 75, 144
};
static const uint8_t head_t[150] = {
    43, 47, 51, 55, 59, 62, 66, 70, 74, 78, 82, 85, 89, 93, 97, 45,
    49, 53, 57, 62, 66, 70, 75, 79, 83, 87, 92, 96, 100, 104, 2, 12,
    23, 33, 43, 53, 64, 74, 84, 94, 105, 115, 125, 135, 141, 0, 0, 11,
    23, 36, 49, 61, 74, 87, 99, 112, 125, 138, 141, 141, 23, 31, 38, 46,
    54, 61, 69, 77, 84, 92, 100, 107, 115, 123, 130, 25, 29, 34, 39, 43,
    48, 52, 57, 61, 66, 70, 75, 80, 84, 89, 24, 31, 38, 45, 52, 60,
    67, 74, 81, 88, 96, 103, 110, 117, 124, 37, 41, 45, 49, 54, 58, 62,
    66, 70, 74, 78, 83, 87, 91, 95, 24, 30, 37, 43, 50, 56, 63, 69,
    76, 82, 89, 95, 102, 108, 115, 29, 34, 39, 44, 49, 54, 59, 65, 70,
    75, 80, 85, 90, 95, 100
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

int ddnn_device_3(const uint8_t *sensor, uint8_t *summary, uint8_t *features)
{
    if (!sensor || !summary || !features)
        return -1;
    conv1(sensor, features);
    head(features, summary);
    return 0;
}
