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

/* conv1: 3x3 binary convolution (real input 10x14x1, 4 filters),
 * 3x3/2 max-pool -> 5x7x4, batch norm, sign. s = the sum of the +-weighted inputs, zero border;
 * integer thresholds. The conv rows a pooled row
 * needs are kept in a ring of 3 rows; each input row is read once into a padded row. */
static const uint8_t conv1_w[5] = {
    156, 7, 169, 78, 144
};
static const int16_t conv1_t[4] = {
    24, 68, 29, 172
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
    117, 7, 231, 35, 98, 238, 236, 244, 243, 146, 197, 111, 231, 44, 159, 238,
    59, 128, 4, 0, 7, 188, 95, 204, 113, 23, 125, 146, 144, 148, 148, 23,
    22, 128, 22, 32, 60, 0, 119, 154, 54, 194, 105, 19, 100, 235, 183, 62,
    20, 95, 127, 233, 223, 240, 1, 126, 130, 15, 231, 232, 238, 235, 64, 25,
    143, 188, 30, 70, 251, 143, 253, 96, 159, 255, 116, 3, 179, 234, 232, 10,
    27, 81, 16, 4, 160, 23, 0, 70, 19, 176, 64, 13, 156, 40, 98, 97,
    159, 77, 120, 4, 129, 35, 132, 226, 41, 44, 85, 64, 15, 19, 34, 254,
    128, 0, 34, 236, 128, 255, 47, 156, 1, 246, 241, 196, 119, 160, 67, 160,
    3, 123, 0, 140, 114, 200, 71, 243, 126, 224, 116, 25, 255, 123, 144, 32,
    66, 7, 248, 154, 240, 2, 27, 55, 211, 228, 19, 117, 245, 219, 245, 8,
    157, 112, 194, 2, 177, 249, 0, 2, 27, 136, 222, 127, 204, 13, 213, 184,
    8, 100, 47, 112
};
static const float head_scale[10] = {
    0.0811211765f, 0.108176582f, 0.0714269504f, 0.082856454f, 0.0808109716f, 0.0850421712f,
    0.0515270568f, 0.100062311f, 0.11887867f, 0.0745685771f
};
static const float head_bias[10] = {
    0.591781735f, -2.10324097f, -0.271774858f, 1.24960029f, -0.958655357f, -1.48491788f,
    0.343595028f, -0.58689183f, -0.0453748181f, -0.997546852f
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

int ddnn_device_0(const uint8_t *sensor, uint8_t *summary, uint8_t *features)
{
    if (!sensor || !summary || !features)
        return -1;
    conv1(sensor, features);
    head(features, summary);
    return 0;
}
