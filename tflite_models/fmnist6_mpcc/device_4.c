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
    144, 100, 139, 42, 192
};
static const int16_t conv1_t[4] = {
    -111, 64, 114, 27
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
    216, 226, 112, 203, 10, 97, 81, 212, 182, 66, 96, 75, 120, 12, 36, 255,
    1, 208, 72, 128, 247, 113, 144, 142, 119, 128, 108, 183, 113, 11, 75, 245,
    201, 48, 155, 240, 203, 78, 49, 36, 166, 251, 12, 91, 111, 185, 192, 39,
    239, 152, 90, 253, 206, 32, 218, 86, 175, 33, 105, 202, 53, 0, 201, 103,
    116, 224, 191, 247, 147, 2, 191, 240, 138, 118, 119, 120, 183, 151, 36, 130,
    127, 241, 80, 167, 251, 235, 107, 79, 175, 192, 127, 103, 251, 231, 72, 9,
    205, 89, 144, 200, 11, 128, 4, 128, 4, 0, 0, 32, 178, 111, 20, 42,
    142, 124, 34, 138, 127, 82, 114, 15, 251, 255, 12, 206, 201, 112, 247, 99,
    255, 231, 156, 200, 222, 216, 0, 200, 13, 8, 0, 148, 136, 32, 0, 32,
    247, 81, 189, 15, 116, 137, 138, 253, 217, 14, 29, 70, 0, 20, 16, 145,
    4, 0, 119, 67, 1, 63, 221, 13, 59, 188, 133, 220, 208, 8, 4, 75,
    0, 10, 2, 0
};
static const uint8_t head_t[150] = {
    19, 27, 35, 43, 51, 59, 67, 75, 83, 91, 99, 107, 115, 123, 130, 0,
    0, 0, 14, 29, 43, 57, 72, 86, 101, 115, 130, 141, 141, 141, 33, 39,
    44, 49, 55, 60, 66, 71, 76, 82, 87, 93, 98, 104, 109, 5, 14, 22,
    31, 40, 49, 58, 66, 75, 84, 93, 102, 110, 119, 128, 0, 0, 0, 9,
    26, 42, 59, 75, 92, 108, 125, 141, 141, 141, 141, 0, 0, 0, 4, 20,
    37, 54, 71, 88, 105, 121, 138, 141, 141, 141, 7, 17, 26, 36, 46, 55,
    65, 75, 84, 94, 104, 113, 123, 132, 141, 0, 0, 0, 6, 23, 40, 57,
    74, 91, 108, 126, 141, 141, 141, 141, 0, 0, 0, 9, 24, 39, 53, 68,
    82, 97, 111, 126, 141, 141, 141, 0, 0, 8, 21, 34, 47, 60, 73, 86,
    99, 112, 125, 138, 141, 141
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
