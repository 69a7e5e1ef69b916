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
    111, 0, 105, 152, 144
};
static const int16_t conv1_t[4] = {
    440, -377, -42, 20
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
    102, 156, 8, 159, 234, 4, 111, 127, 203, 247, 127, 219, 129, 60, 200, 171,
    139, 144, 128, 153, 70, 231, 107, 182, 97, 127, 221, 230, 215, 127, 247, 19,
    124, 39, 156, 32, 204, 83, 11, 154, 134, 15, 153, 234, 66, 59, 158, 22,
    196, 191, 72, 68, 79, 80, 144, 152, 128, 65, 1, 154, 230, 0, 39, 30,
    96, 47, 56, 4, 38, 127, 135, 128, 7, 124, 64, 16, 118, 130, 71, 135,
    214, 119, 112, 184, 135, 206, 131, 161, 56, 80, 23, 79, 157, 121, 94, 77,
    153, 23, 219, 27, 25, 185, 235, 49, 49, 149, 177, 176, 128, 143, 153, 127,
    8, 253, 245, 247, 206, 230, 223, 248, 196, 79, 247, 44, 102, 64, 251, 0,
    136, 200, 19, 2, 42, 98, 18, 130, 198, 14, 146, 72, 0, 236, 228, 160,
    103, 139, 141, 150, 216, 243, 117, 7, 204, 71, 208, 186, 121, 36, 0, 45,
    227, 128, 48, 0, 9, 99, 136, 2, 53, 50, 128, 139, 71, 42, 67, 190,
    113, 165, 119, 80
};
static const uint8_t head_t[150] = {
    24, 30, 36, 42, 47, 53, 59, 65, 71, 77, 83, 89, 95, 101, 107, 12,
    20, 27, 35, 42, 50, 57, 65, 72, 80, 87, 95, 102, 110, 117, 22, 27,
    33, 39, 44, 50, 56, 61, 67, 73, 78, 84, 90, 96, 101, 21, 28, 36,
    43, 51, 59, 66, 74, 81, 89, 96, 104, 112, 119, 127, 27, 33, 39, 45,
    50, 56, 62, 68, 74, 80, 85, 91, 97, 103, 109, 2, 10, 18, 26, 34,
    42, 50, 58, 66, 75, 83, 91, 99, 107, 115, 33, 39, 44, 50, 55, 61,
    67, 72, 78, 83, 89, 95, 100, 106, 111, 21, 28, 35, 42, 48, 55, 62,
    69, 76, 82, 89, 96, 103, 110, 116, 29, 34, 40, 45, 50, 55, 60, 65,
    70, 75, 80, 85, 90, 95, 100, 33, 38, 44, 49, 55, 60, 66, 71, 77,
    82, 88, 93, 99, 105, 110
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
