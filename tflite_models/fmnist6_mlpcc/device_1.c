/* device_1: generated C99 for a DDNN end device; see device_1.h. */
#include <stdint.h>

#include "device_1.h"

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

/* conv1: 3x3 binary convolution (real input 10x14x1, 4 filters),
 * 3x3/2 max-pool -> 5x7x4, batch norm, sign. s = the sum of the +-weighted inputs, zero border;
 * integer thresholds. The conv rows a pooled row
 * needs are kept in a ring of 3 rows; each input row is read once into a padded row. */
static const uint8_t conv1_w[5] = {
    218, 13, 248, 17, 192
};
static const int16_t conv1_t[4] = {
    239, 236, -60, 36
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

/* head: binary dense 140 -> 10 classes, batch norm folded, int4 summary; float32 in the binary's order. */
static const uint8_t head_w[180] = {
    147, 9, 206, 213, 24, 253, 163, 216, 56, 177, 104, 20, 250, 221, 166, 85,
    176, 208, 211, 34, 2, 140, 220, 32, 6, 218, 190, 121, 45, 194, 43, 212,
    162, 19, 194, 96, 178, 42, 207, 211, 117, 243, 223, 175, 255, 100, 26, 141,
    242, 178, 53, 159, 75, 80, 140, 0, 138, 204, 4, 160, 76, 223, 253, 50,
    40, 141, 23, 112, 225, 176, 21, 64, 98, 8, 221, 240, 46, 207, 133, 42,
    70, 229, 126, 2, 67, 245, 202, 65, 158, 144, 118, 12, 202, 240, 112, 104,
    13, 4, 113, 96, 128, 27, 179, 50, 61, 246, 112, 80, 12, 157, 215, 30,
    171, 31, 131, 249, 17, 203, 125, 65, 152, 251, 243, 219, 15, 128, 49, 63,
    209, 147, 121, 205, 98, 16, 172, 237, 38, 99, 123, 107, 15, 146, 0, 96,
    183, 34, 12, 249, 118, 103, 156, 239, 48, 229, 209, 102, 15, 255, 16, 208,
    125, 144, 191, 34, 21, 7, 95, 245, 26, 187, 125, 253, 39, 50, 247, 242,
    67, 125, 49, 96
};
static const float head_scale[10] = {
    0.110599235f, 0.0964204147f, 0.0966889411f, 0.0864488333f, 0.0712072924f, 0.0712213963f,
    0.0907794386f, 0.102186486f, 0.0671475306f, 0.0869204625f
};
static const float head_bias[10] = {
    1.42572808f, -1.70923316f, 0.402257472f, -0.304889292f, 1.17610931f, -0.189065814f,
    0.670211375f, -0.0929520726f, 0.839574218f, -0.723864913f
};

static void head(const uint8_t *in, uint8_t *summary)
{
    unsigned j;
    clear_bytes(summary, 5u);
    for (j = 0; j < 10u; j++) {
        float acc = head_bias[j]; /* the binary's sum: bias first, then inputs in order */
        const float term[2] = {-head_scale[j], head_scale[j]}; /* disagree, agree */
        const uint8_t *w = head_w + j * 18u;
        unsigned b, i = 0;
        for (b = 0; b < 18u; b++) {
            unsigned agree = ~(unsigned)(in[b] ^ w[b]);
            int bit;
            for (bit = 7; bit >= 0 && i < 140u; bit--, i++)
                acc += term[(agree >> bit) & 1u];
        }
        float t = acc + 0.5f; /* the binary's floor(acc + 0.5) clipped to [-8, 7] */
        int q;
        if (t >= 7.0f) {
            q = 7;
        } else if (t < -7.0f) {
            q = -8;
        } else {
            int32_t i0 = (int32_t)t;
            q = (int)(i0 - (t < (float)i0));
        }
        summary[j >> 1] = (uint8_t)(summary[j >> 1] | (((unsigned)q & 0xFu) << ((j & 1u) * 4u)));
    }
}

int ddnn_device_1(const uint8_t *sensor, uint8_t *summary, uint8_t *features)
{
    if (!sensor || !summary || !features)
        return -1;
    conv1(sensor, features);
    head(features, summary);
    return 0;
}
