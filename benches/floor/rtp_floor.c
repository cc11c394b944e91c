/*
 * rtp_floor: the least a recording server must do per RTP packet, as a
 * yardstick for vmesh's CPU per packet (scripts/bench.sh, "the floors").
 *
 * One UDP socket per call on IP:PORT_BASE+2i (even ports, as RTP has them,
 * RFC 3550 section 11), all in one level-triggered epoll set; each ready
 * socket gets one recv(2) per wake-up, the RTP header (RFC 3550 section
 * 5.1: version, CSRC count, extension) is skipped, and the payload goes
 * to that call's file:
 *
 *   --write packet    one write(2) per packet (the "recv + write" floor);
 *   --write batched   into a buffer per call, written every --batch-ms of
 *                     audio (1 s by default) and at the end;
 *   --decode ulaw     the G.711 mu-law payload is decoded to 16-bit PCM
 *                     first (ITU-T G.711, by a 256-entry table), as a
 *                     recorder that stores PCM must;
 *   --decode g722     the G.722 payload (64 kbit/s) is decoded to 16 kHz
 *                     16-bit PCM by spandsp's decoder, one per call;
 *   --decode opus     the Opus payload is decoded to 16 kHz mono 16-bit
 *                     PCM (vmesh's default Opus rate) by libopus, one
 *                     decoder per call;
 *   --send echo       one RTP packet (20 ms of mu-law silence, its own
 *                     SSRC, sequence and timestamp) sent back to the
 *                     packet's source for each packet received: a
 *                     keep-alive in every frame while the caller speaks
 *                     (sendto(2) per packet; vmesh with keepalive_ms = 20).
 *
 * It stops by itself: after --idle-ms without a packet once packets have
 * come, at --max-s in any case, or on SIGTERM/SIGINT; then it writes what
 * is buffered and a JSON report (--report FILE). "ready" on stdout means
 * every socket is bound.
 *
 *   gcc -O2 -Wall -Wextra -o rtp_floor rtp_floor.c -lspandsp -lopus
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <opus/opus.h>
#include <spandsp.h>

#define MAX_EVENTS 1024
#define RECV_BUFFER 2048

struct call {
    int sock;
    int file;
    uint64_t packets;
    uint16_t out_seq; /* echo mode */
    uint32_t out_ts;
    uint8_t *buf; /* batched mode */
    g722_decode_state_t *g722; /* --decode g722 */
    OpusDecoder *opus; /* --decode opus */
    size_t used;
};

static volatile sig_atomic_t stopping;
static int16_t ulaw_table[256];

static void on_signal(int sig) { (void)sig; stopping = 1; }

static void die(const char *what) {
    fprintf(stderr, "rtp_floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ITU-T G.711 mu-law to linear, the classic bit-level expansion. */
static int16_t ulaw_decode(uint8_t u) {
    u = (uint8_t)~u;
    int t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4);
    return (int16_t)((u & 0x80) ? (0x84 - t) : (t - 0x84));
}

static const char *arg(int argc, char **argv, const char *key, const char *fallback) {
    for (int i = 1; i + 1 < argc; i += 2)
        if (strcmp(argv[i], key) == 0) return argv[i + 1];
    if (!fallback) {
        fprintf(stderr, "rtp_floor: %s is required\n", key);
        exit(2);
    }
    return fallback;
}

static void write_all(int fd, const uint8_t *p, size_t n, uint64_t *written) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            die("write");
        }
        p += w;
        n -= (size_t)w;
        *written += (uint64_t)w;
    }
}

int main(int argc, char **argv) {
    const char *ip = arg(argc, argv, "--ip", NULL);
    int port_base = atoi(arg(argc, argv, "--port-base", NULL));
    int calls = atoi(arg(argc, argv, "--calls", NULL));
    const char *dir = arg(argc, argv, "--dir", NULL);
    const char *mode = arg(argc, argv, "--write", "packet");
    const char *decode = arg(argc, argv, "--decode", "none");
    const char *send = arg(argc, argv, "--send", "none");
    int batch_ms = atoi(arg(argc, argv, "--batch-ms", "1000"));
    int idle_ms = atoi(arg(argc, argv, "--idle-ms", "2000"));
    int max_s = atoi(arg(argc, argv, "--max-s", "600"));
    const char *report = arg(argc, argv, "--report", NULL);
    int batched = strcmp(mode, "batched") == 0;
    int ulaw = strcmp(decode, "ulaw") == 0;
    int g722 = strcmp(decode, "g722") == 0;
    int opus = strcmp(decode, "opus") == 0;
    int wideband = g722 || opus;
    int echo = strcmp(send, "echo") == 0;
    if ((!batched && strcmp(mode, "packet") != 0) || (!ulaw && !wideband && strcmp(decode, "none") != 0) ||
        (!echo && strcmp(send, "none") != 0) ||
        calls < 1 || port_base < 1 || port_base + 2 * (calls - 1) > 65535 || batch_ms < 20) {
        fprintf(stderr, "rtp_floor: bad arguments (see the comment at the top of rtp_floor.c)\n");
        return 2;
    }
    for (int i = 0; i < 256; i++) ulaw_table[i] = ulaw_decode((uint8_t)i);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    /* Octets one batch holds: batch_ms of 8 kHz audio, 2 per sample if
     * decoded, twice that for G.722's and Opus's 16 kHz. */
    size_t batch_bytes = (size_t)batch_ms * 8 * (ulaw ? 2 : wideband ? 4 : 1);
    struct call *call = calloc((size_t)calls, sizeof *call);
    if (!call) die("calloc");
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    for (int i = 0; i < calls; i++) {
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)(port_base + 2 * i));
        if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
            fprintf(stderr, "rtp_floor: bad --ip %s\n", ip);
            return 2;
        }
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (s < 0) die("socket");
        if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
        char path[4096];
        snprintf(path, sizeof path, "%s/call-%d.%s", dir, i, ulaw || wideband ? "pcm" : "ul");
        int f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (f < 0) die(path);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) < 0) die("epoll_ctl");
        call[i].sock = s;
        call[i].file = f;
        if (g722 && !(call[i].g722 = g722_decode_init(NULL, 64000, 0))) die("g722_decode_init");
        if (opus) {
            int err = 0;
            call[i].opus = opus_decoder_create(16000, 1, &err);
            if (err != OPUS_OK) die("opus_decoder_create");
        }
        if (batched) {
            call[i].buf = malloc(batch_bytes + RECV_BUFFER * 2);
            if (!call[i].buf) die("malloc");
        }
    }
    printf("ready\n");
    fflush(stdout);

    uint64_t start = mono_ms(), last = 0, packets = 0, malformed = 0, written = 0, sent = 0;
    /* The echo: RFC 3550 5.1 header (version 2, PT 0) and 160 octets of
     * mu-law silence (0xFF). */
    uint8_t out[12 + 160];
    memset(out, 0xFF, sizeof out);
    out[0] = 0x80;
    out[1] = 0;
    struct epoll_event events[MAX_EVENTS];
    uint8_t in[RECV_BUFFER];
    uint8_t pcm[RECV_BUFFER * 4];
    while (!stopping) {
        uint64_t now = mono_ms();
        if (now - start > (uint64_t)max_s * 1000) break;
        if (packets > 0 && now - last > (uint64_t)idle_ms) break;
        int n = epoll_wait(ep, events, MAX_EVENTS, 100);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int e = 0; e < n; e++) {
            struct call *c = &call[events[e].data.u32];
            struct sockaddr_in from;
            socklen_t from_len = sizeof from;
            ssize_t len = recvfrom(c->sock, in, sizeof in, 0, (struct sockaddr *)&from, &from_len);
            if (len < 0) continue; /* EAGAIN or an ICMP error: nothing to keep */
            if (echo) {
                uint32_t ssrc = 0x666c6f00u + events[e].data.u32;
                out[2] = (uint8_t)(c->out_seq >> 8);
                out[3] = (uint8_t)c->out_seq;
                for (int k = 0; k < 4; k++) {
                    out[4 + k] = (uint8_t)(c->out_ts >> (24 - 8 * k));
                    out[8 + k] = (uint8_t)(ssrc >> (24 - 8 * k));
                }
                c->out_seq++;
                c->out_ts += 160;
                if (sendto(c->sock, out, sizeof out, 0, (struct sockaddr *)&from, from_len) ==
                    (ssize_t)sizeof out)
                    sent++;
            }
            /* RFC 3550 5.1: 12 octets, then CSRCs, then an extension. */
            size_t off = 12;
            if (len < 12 || (in[0] >> 6) != 2) { malformed++; continue; }
            off += 4u * (in[0] & 0x0F);
            if ((in[0] & 0x10) && (size_t)len >= off + 4)
                off += 4 + 4u * ((size_t)in[off + 2] << 8 | in[off + 3]);
            if (off > (size_t)len) { malformed++; continue; }
            const uint8_t *payload = in + off;
            size_t plen = (size_t)len - off;
            if (ulaw) {
                int16_t *out = (int16_t *)pcm;
                for (size_t k = 0; k < plen; k++) out[k] = ulaw_table[payload[k]];
                payload = pcm;
                plen *= 2;
            } else if (g722) {
                int samples = g722_decode(c->g722, (int16_t *)pcm, payload, (int)plen);
                payload = pcm;
                plen = (size_t)samples * 2;
            } else if (opus) {
                int samples = opus_decode(c->opus, payload, (opus_int32)plen, (opus_int16 *)pcm,
                                          (int)(sizeof pcm / 2), 0);
                if (samples < 0) { malformed++; continue; }
                payload = pcm;
                plen = (size_t)samples * 2;
            }
            c->packets++;
            packets++;
            if (batched) {
                memcpy(c->buf + c->used, payload, plen);
                c->used += plen;
                if (c->used >= batch_bytes) {
                    write_all(c->file, c->buf, c->used, &written);
                    c->used = 0;
                }
            } else {
                write_all(c->file, payload, plen, &written);
            }
        }
        if (n > 0) last = mono_ms();
    }
    uint64_t with_packets = 0, min_packets = UINT64_MAX, max_packets = 0;
    for (int i = 0; i < calls; i++) {
        if (call[i].used) write_all(call[i].file, call[i].buf, call[i].used, &written);
        close(call[i].file);
        close(call[i].sock);
        if (call[i].packets) with_packets++;
        if (call[i].packets < min_packets) min_packets = call[i].packets;
        if (call[i].packets > max_packets) max_packets = call[i].packets;
        free(call[i].buf);
        if (call[i].g722) g722_decode_free(call[i].g722);
        if (call[i].opus) opus_decoder_destroy(call[i].opus);
    }
    FILE *r = fopen(report, "w");
    if (!r) die(report);
    fprintf(r,
            "{\"write\": \"%s\", \"decode\": \"%s\", \"send\": \"%s\", \"sent\": %llu, "
            "\"calls\": %d, \"packets\": %llu, "
            "\"malformed\": %llu, \"bytes_written\": %llu, \"calls_with_packets\": %llu, "
            "\"min_packets_per_call\": %llu, \"max_packets_per_call\": %llu}\n",
            mode, decode, send, (unsigned long long)sent, calls, (unsigned long long)packets, (unsigned long long)malformed,
            (unsigned long long)written, (unsigned long long)with_packets,
            (unsigned long long)min_packets, (unsigned long long)max_packets);
    fclose(r);
    return 0;
}
