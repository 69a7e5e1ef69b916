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

/* conv1: 3x3 binary convolution (real input 10x14x1, 4 filters),
 * 3x3/2 max-pool -> 5x7x4, batch norm, sign. s = the sum of the +-weighted inputs, zero border;
 * integer thresholds. The conv rows a pooled row
 * needs are kept in a ring of 3 rows; each input row is read once into a padded row. */
static const uint8_t conv1_w[5] = {
    146, 100, 139, 47, 192
};
static const int16_t conv1_t[4] = {
    -87, 80, 142, 453
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

/* head: binary dense 140 -> 10 classes, batch norm folded, float32 summary; float32 in the binary's order. */
static const uint8_t head_w[180] = {
    145, 166, 64, 139, 218, 112, 41, 88, 163, 66, 88, 223, 116, 8, 62, 177,
    2, 208, 172, 240, 205, 165, 182, 52, 161, 220, 100, 11, 103, 135, 104, 133,
    217, 48, 200, 32, 146, 100, 96, 30, 38, 222, 41, 82, 102, 249, 193, 167,
    235, 139, 114, 253, 238, 32, 201, 90, 167, 57, 72, 135, 55, 216, 74, 113,
    124, 200, 47, 103, 187, 110, 244, 80, 128, 52, 151, 90, 0, 255, 52, 166,
    63, 190, 195, 119, 216, 162, 123, 222, 39, 0, 123, 204, 186, 229, 72, 8,
    201, 89, 148, 200, 155, 136, 8, 148, 12, 0, 8, 160, 185, 229, 4, 11,
    142, 97, 114, 136, 231, 3, 72, 15, 121, 116, 36, 12, 193, 112, 115, 66,
    255, 231, 144, 200, 220, 216, 128, 200, 141, 136, 8, 156, 140, 40, 0, 48,
    246, 145, 173, 14, 84, 136, 138, 119, 217, 142, 149, 68, 9, 149, 20, 16,
    140, 0, 113, 4, 1, 127, 85, 19, 123, 136, 133, 221, 201, 192, 10, 202,
    201, 220, 108, 128
};
static const float head_scale[10] = {
    0.112596668f, 0.0287038032f, 0.117533155f, 0.0983562991f, 0.110185854f, 0.0273739379f,
    0.0925591588f, 0.024871666f, 0.0254486278f, 0.08727137f
};
static const float head_bias[10] = {
    -0.854811788f, -0.599857032f, 0.501436234f, 0.568431973f, 0.349582613f, -0.718568444f,
    -0.990212262f, -0.780671656f, -0.385346085f, -1.24595332f
};

static void head(const uint8_t *in, uint8_t *summary)
{
    unsigned j;
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
        union { float f; uint32_t u; } bits; /* little-endian float32 on the wire */
        uint32_t u;
        bits.f = acc;
        u = bits.u;
        summary[4 * j] = (uint8_t)u;
        summary[4 * j + 1] = (uint8_t)(u >> 8);
        summary[4 * j + 2] = (uint8_t)(u >> 16);
        summary[4 * j + 3] = (uint8_t)(u >> 24);
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
