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

/* conv1: 3x3 binary convolution (real input 10x14x1, 4 filters),
 * 3x3/2 max-pool -> 5x7x4, batch norm, sign. s = the sum of the +-weighted inputs, zero border;
 * integer thresholds. The conv rows a pooled row
 * needs are kept in a ring of 3 rows; each input row is read once into a padded row. */
static const uint8_t conv1_w[5] = {
    15, 128, 105, 28, 144
};
static const int16_t conv1_t[4] = {
    188, -270, -62, 384
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
    64, 187, 187, 116, 120, 123, 123, 86, 6, 89, 225, 1, 102, 91, 15, 148,
    81, 64, 248, 134, 5, 127, 13, 106, 156, 242, 21, 194, 207, 198, 87, 48,
    253, 97, 159, 80, 196, 27, 71, 196, 3, 158, 77, 67, 251, 38, 6, 15,
    148, 86, 64, 187, 52, 64, 137, 150, 66, 233, 129, 102, 202, 162, 69, 126,
    11, 44, 118, 5, 254, 132, 71, 192, 48, 140, 102, 98, 72, 150, 78, 166,
    248, 228, 99, 199, 133, 102, 165, 56, 196, 96, 118, 207, 216, 151, 239, 255,
    253, 127, 206, 253, 255, 255, 255, 141, 238, 103, 152, 16, 50, 128, 155, 214,
    82, 189, 253, 161, 171, 119, 193, 42, 134, 103, 167, 168, 84, 96, 248, 102,
    255, 254, 157, 207, 152, 138, 155, 137, 135, 46, 170, 57, 100, 32, 69, 176,
    119, 118, 33, 38, 252, 238, 128, 196, 77, 166, 200, 184, 159, 101, 136, 9,
    231, 64, 50, 168, 9, 119, 194, 178, 151, 18, 198, 169, 140, 143, 83, 136,
    255, 117, 203, 144
};
static const float head_scale[10] = {
    0.133093357f, 0.144655883f, 0.0594441928f, 0.0407457463f, 0.0618519224f, 0.10419587f,
    0.0910984874f, 0.116981052f, 0.128674909f, 0.0960260928f
};
static const float head_bias[10] = {
    0.676368356f, -1.18331814f, -0.765039921f, -0.900273383f, -1.50910699f, 2.82207108f,
    -0.415618062f, 0.619445682f, -0.744207203f, 0.36305812f
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

int ddnn_device_3(const uint8_t *sensor, uint8_t *summary, uint8_t *features)
{
    if (!sensor || !summary || !features)
        return -1;
    conv1(sensor, features);
    head(features, summary);
    return 0;
}
