/* Host driver of one device tier (system gcc): host_tier SENSOR_FILE MESSAGES_FILE [REPEATS]
 * runs the tier on every sensor message of the file (REPEATS times, default 1), writes
 * summary + features per sample, and prints the samples and the CPU seconds of the
 * fastest pass over them (file I/O excluded; CPU time, so other processes on the machine
 * do not count).
 * Built with -DTIER_ENTRY=ddnn_device_N -DSENSOR_BYTES=.. -DSUMMARY_BYTES=.. -DFEATURES_BYTES=.. */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int TIER_ENTRY(const uint8_t *sensor, uint8_t *summary, uint8_t *features);

#define MESSAGE_BYTES (SUMMARY_BYTES + FEATURES_BYTES)

int main(int argc, char **argv)
{
    FILE *in, *out;
    long size, n, i, r, repeats = 1;
    uint8_t *sensors, *messages;
    struct timespec t0, t1;
    double best = -1.0;
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s SENSOR_FILE MESSAGES_FILE [REPEATS]\n", argv[0]);
        return 2;
    }
    if (argc == 4 && (repeats = strtol(argv[3], NULL, 10)) < 1) {
        fprintf(stderr, "error: REPEATS must be a positive integer\n");
        return 2;
    }
    in = fopen(argv[1], "rb");
    if (!in || fseek(in, 0, SEEK_END) != 0 || (size = ftell(in)) < 0) {
        fprintf(stderr, "error: cannot read %s\n", argv[1]);
        return 2;
    }
    rewind(in);
    n = size / SENSOR_BYTES;
    sensors = malloc((size_t)(n * SENSOR_BYTES + 1));
    messages = malloc((size_t)(n * MESSAGE_BYTES + 1));
    if (!sensors || !messages || fread(sensors, SENSOR_BYTES, (size_t)n, in) != (size_t)n) {
        fprintf(stderr, "error: cannot load %s\n", argv[1]);
        return 2;
    }
    fclose(in);
    for (r = 0; r < repeats; r++) {
        double seconds;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
        for (i = 0; i < n; i++) {
            uint8_t *m = messages + i * MESSAGE_BYTES;
            int rc = TIER_ENTRY(sensors + i * SENSOR_BYTES, SUMMARY_BYTES ? m : (uint8_t *)0,
                                m + SUMMARY_BYTES);
            if (rc != 0) {
                fprintf(stderr, "error: the tier returned %d at sample %ld\n", rc, i);
                return 3;
            }
        }
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
        seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (best < 0.0 || seconds < best)
            best = seconds;
    }
    out = fopen(argv[2], "wb");
    if (!out || fwrite(messages, MESSAGE_BYTES, (size_t)n, out) != (size_t)n || fclose(out) != 0) {
        fprintf(stderr, "error: cannot write %s\n", argv[2]);
        return 4;
    }
    printf("samples %ld seconds %.9f\n", n, best);
    return 0;
}
