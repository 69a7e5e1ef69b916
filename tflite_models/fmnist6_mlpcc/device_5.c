/* device_5: generated C99 for a DDNN end device; see device_5.h. */
#include <stdint.h>

#include "device_5.h"

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
    138, 41, 119, 242, 160
};
static const int16_t conv1_t[4] = {
    -36, 16, 548, 30
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
    96, 54, 252, 231, 132, 55, 143, 89, 155, 213, 169, 140, 113, 116, 200, 151,
    127, 112, 0, 10, 225, 216, 118, 53, 221, 166, 122, 78, 200, 162, 34, 136,
    130, 44, 140, 0, 136, 250, 110, 44, 152, 127, 74, 46, 205, 119, 240, 45,
    151, 223, 168, 205, 187, 208, 55, 119, 113, 248, 118, 254, 38, 111, 106, 112,
    138, 244, 135, 138, 189, 223, 153, 160, 32, 213, 5, 116, 91, 26, 11, 33,
    254, 81, 50, 77, 191, 64, 44, 95, 177, 160, 87, 64, 21, 152, 101, 0,
    156, 141, 217, 159, 8, 205, 147, 113, 205, 221, 191, 192, 168, 251, 8, 222,
    184, 244, 47, 205, 151, 122, 158, 128, 171, 24, 128, 39, 51, 64, 23, 72,
    212, 2, 111, 157, 132, 134, 41, 137, 74, 32, 50, 51, 130, 107, 49, 176,
    124, 61, 218, 87, 146, 53, 83, 80, 168, 244, 247, 189, 113, 191, 125, 220,
    199, 112, 150, 141, 128, 201, 49, 244, 130, 158, 9, 208, 35, 21, 111, 1,
    95, 28, 136, 96
};
static const float head_scale[10] = {
    0.068545498f, 0.100951456f, 0.0973663479f, 0.0804017708f, 0.1048816f, 0.0750527307f,
    0.0953651145f, 0.0993020311f, 0.114776812f, 0.0681177005f
};
static const float head_bias[10] = {
    0.334414661f, -2.112041f, -0.349368781f, -0.869429588f, -0.27642718f, -0.40047735f,
    -0.48907119f, -0.671545506f, 1.64441705f, -0.142597497f
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

int ddnn_device_5(const uint8_t *sensor, uint8_t *summary, uint8_t *features)
{
    if (!sensor || !summary || !features)
        return -1;
    conv1(sensor, features);
    head(features, summary);
    return 0;
}
