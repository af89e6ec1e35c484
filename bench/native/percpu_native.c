// Native reference for the PerCpu benchmark suite: what two pinned threads can do in plain C.
// The managed harness (bench/PerCpu.Benchmarks) builds this file with gcc at run time into
// bench/native/build/ and runs one measurement per invocation; it owns calibration, the placement
// gate and the statistics, so this program only moves messages and reports what it saw.
//
// Usage:  percpu_native MODE N          one run of N messages / round trips
//         percpu_native probe [K] [MS]  K placement probes (default 1), MS ms apart (default 0)
// MODE:   ring        SPSC ring of 24-byte entries {fn, arg, long}; index published per message
//         batched     same ring, publication batched (every 64 entries) + consumer drains what is
//                     published, clears the slots, publishes its index once per batch (the limit)
//         pingpong    one message there, one reply back, through two per-message rings; busy poll
//         line        one shared cache line bounced, no queue (the floor of any round trip)
//         futex       round trip with both receivers parked in futex_wait, woken by futex_wake
// Output: "OK\t<seconds>\t<operations>\t<note>" or "FAIL\t<reason>" (exit code 1).
// Threads: the sender/pinger on CPU 0, the receiver/ponger on CPU 1 (sched affinity).
// Every spin loop executes PAUSE (_mm_pause), as the managed loops do (X86Base.Pause).
#define _GNU_SOURCE
#include <errno.h>
#include <immintrin.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define LINE 128        // two 64-byte lines: keeps the adjacent-line prefetcher from coupling fields
#define RING 1024       // entries per ring (24 KiB)
#define BATCH 64        // entries the batched producer writes before it publishes its index
#define PROBE_N 20000   // round trips per placement probe (~4 ms here)
#define PROBE_MAX_S 0.05  // a probe stops after this long: on an overloaded machine the two pinned threads are
                          // rarely on-CPU together, a full probe could take minutes, and it would be rejected anyway

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fail(const char* what) {
    printf("FAIL\t%s\n", what);
    fflush(stdout);
    exit(1);
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (rc != 0) {
        char buf[128];
        snprintf(buf, sizeof buf, "pthread_setaffinity_np(CPU %d): %s", cpu, strerror(rc));
        fail(buf);
    }
}

// ------------------------------------------------------------------ the function every entry calls
// Checks exactly-once, in-order delivery: message i carries i as its long argument.
typedef struct {
    _Alignas(LINE) long next;   // the value the next message must carry
    long errors;                // messages that arrived out of order (or twice, or after a gap)
    char pad[LINE - 2 * sizeof(long)];
} counter;

__attribute__((noinline)) static void seq_check(void* arg, long v) {
    counter* c = arg;
    if (v != c->next) c->errors++;
    c->next = v + 1;
}

static void verify(const counter* c, long n, const char* what) {
    if (c->next != n || c->errors != 0) {
        char buf[160];
        snprintf(buf, sizeof buf, "%s: delivered up to %ld of %ld, %ld out of order", what, c->next, n, c->errors);
        fail(buf);
    }
}

// ------------------------------------------------------------------ the ring
typedef void (*fn_t)(void*, long);
typedef struct { fn_t fn; void* arg; long val; } entry;   // 24 bytes, as the managed entry
_Static_assert(sizeof(entry) == 24, "entry is 24 bytes");

typedef struct {
    _Alignas(LINE) _Atomic uint64_t widx;   // published by the producer (release)
    _Alignas(LINE) uint64_t rcache;         // producer: last ridx it read
    uint64_t wnext;                         // producer (batched): next slot to write, not yet published
    _Alignas(LINE) _Atomic uint64_t ridx;   // published by the consumer (release)
    _Alignas(LINE) uint64_t wcache;         // consumer: last widx it read
    _Alignas(LINE) entry buf[RING];
} ring;

static ring* ring_new(void) {
    ring* r = aligned_alloc(LINE, sizeof(ring));
    if (!r) fail("out of memory");
    memset(r, 0, sizeof *r);
    return r;
}

// Per-message producer: write the entry, then release-store the index so the entry is visible first.
static inline int push(ring* r, fn_t fn, void* arg, long val) {
    uint64_t w = atomic_load_explicit(&r->widx, memory_order_relaxed);   // own index
    if (w - r->rcache == RING) {                                          // looks full: re-read
        r->rcache = atomic_load_explicit(&r->ridx, memory_order_acquire);
        if (w - r->rcache == RING) return 0;
    }
    entry* e = &r->buf[w & (RING - 1)];
    e->fn = fn; e->arg = arg; e->val = val;
    atomic_store_explicit(&r->widx, w + 1, memory_order_release);
    return 1;
}

// Per-message consumer: acquire the index (entry reads cannot pass it), call, then release the slot.
static inline int call_one(ring* r) {
    uint64_t rd = atomic_load_explicit(&r->ridx, memory_order_relaxed);  // own index
    if (rd == r->wcache) {
        r->wcache = atomic_load_explicit(&r->widx, memory_order_acquire);
        if (rd == r->wcache) return 0;
    }
    entry* e = &r->buf[rd & (RING - 1)];
    e->fn(e->arg, e->val);
    atomic_store_explicit(&r->ridx, rd + 1, memory_order_release);
    return 1;
}

// Batched producer: publish every BATCH entries, and before waiting on a full ring (else the
// consumer could never see the entries it is waiting for).
static inline void publish(ring* r) {
    atomic_store_explicit(&r->widx, r->wnext, memory_order_release);
}

static inline int push_batched(ring* r, fn_t fn, void* arg, long val) {
    uint64_t w = r->wnext;
    if (w - r->rcache == RING) {
        publish(r);
        r->rcache = atomic_load_explicit(&r->ridx, memory_order_acquire);
        if (w - r->rcache == RING) return 0;
    }
    entry* e = &r->buf[w & (RING - 1)];
    e->fn = fn; e->arg = arg; e->val = val;
    r->wnext = w + 1;
    if (((w + 1) & (BATCH - 1)) == 0) publish(r);
    return 1;
}

// Batched consumer: take everything published, clear each slot as it is read (the managed ring
// must, so that the GC does not keep arguments alive), publish the read index once.
static inline long drain_clear(ring* r) {
    uint64_t rd = atomic_load_explicit(&r->ridx, memory_order_relaxed);
    uint64_t w = atomic_load_explicit(&r->widx, memory_order_acquire);
    if (rd == w) return 0;
    for (uint64_t i = rd; i != w; i++) {
        entry* e = &r->buf[i & (RING - 1)];
        fn_t fn = e->fn; void* arg = e->arg; long val = e->val;
        e->fn = NULL; e->arg = NULL;
        fn(arg, val);
    }
    atomic_store_explicit(&r->ridx, w, memory_order_release);
    return (long)(w - rd);
}

// ------------------------------------------------------------------ two pinned threads
typedef struct {
    void (*body)(void* ctx);
    void* ctx;
    int cpu;
} thread_arg;

static void* thread_main(void* p) {
    thread_arg* a = p;
    pin(a->cpu);
    a->body(a->ctx);
    return NULL;
}

// Runs `second` pinned to CPU 1 and `first` pinned to CPU 0; returns when both have finished.
static void run_pair(void (*first)(void*), void (*second)(void*), void* ctx) {
    pthread_t t0, t1;
    thread_arg a1 = { second, ctx, 1 }, a0 = { first, ctx, 0 };
    if (pthread_create(&t1, NULL, thread_main, &a1) != 0) fail("pthread_create");
    if (pthread_create(&t0, NULL, thread_main, &a0) != 0) fail("pthread_create");
    pthread_join(t0, NULL);
    pthread_join(t1, NULL);
}

typedef struct {
    long n;
    ring* a;              // requests (CPU 0 -> CPU 1)
    ring* b;              // replies (CPU 1 -> CPU 0)
    counter* c;
    _Atomic int ready;    // the receiver is spinning; the sender may start the clock
    _Atomic int stop;
    double t0, t1;        // set by the timing side
    double deadline;      // line: stop after this time (0 = never)
    long done;            // line: round trips completed
    long waits, slept;    // futex: waits, and waits that really slept
} ctx_t;

static void wait_ready(ctx_t* x) {
    while (!atomic_load_explicit(&x->ready, memory_order_acquire)) _mm_pause();
}

// ------------------------------------------------------------------ throughput, per-message ring
static void ring_producer(void* p) {
    ctx_t* x = p;
    wait_ready(x);
    x->t0 = now_s();
    for (long i = 0; i < x->n; i++)
        while (!push(x->a, seq_check, x->c, i)) _mm_pause();
}

static void ring_consumer(void* p) {
    ctx_t* x = p;
    atomic_store_explicit(&x->ready, 1, memory_order_release);
    for (long i = 0; i < x->n; i++)
        while (!call_one(x->a)) _mm_pause();
    x->t1 = now_s();   // the clock stops when the last message has run
}

// ------------------------------------------------------------------ throughput, batched + drain-and-clear
static void batched_producer(void* p) {
    ctx_t* x = p;
    wait_ready(x);
    x->t0 = now_s();
    for (long i = 0; i < x->n; i++)
        while (!push_batched(x->a, seq_check, x->c, i)) _mm_pause();
    publish(x->a);   // the tail of the last batch
}

static void batched_consumer(void* p) {
    ctx_t* x = p;
    atomic_store_explicit(&x->ready, 1, memory_order_release);
    long got = 0;
    while (got < x->n) {
        long k = drain_clear(x->a);
        if (k == 0) _mm_pause();
        got += k;
    }
    x->t1 = now_s();
}

// ------------------------------------------------------------------ busy-poll ping-pong through two rings
typedef struct { ring* reply; counter* c; } pong_ctx;

__attribute__((noinline)) static void pong(void* arg, long v) {   // runs on CPU 1: send the reply
    pong_ctx* p = arg;
    while (!push(p->reply, seq_check, p->c, v)) _mm_pause();
}

static void pp_pinger(void* p) {
    ctx_t* x = p;
    pong_ctx pc = { x->b, x->c };
    wait_ready(x);
    x->t0 = now_s();
    for (long i = 0; i < x->n; i++) {
        while (!push(x->a, pong, &pc, i)) _mm_pause();
        while (!call_one(x->b)) _mm_pause();
    }
    x->t1 = now_s();
    atomic_store_explicit(&x->stop, 1, memory_order_release);
}

static void pp_ponger(void* p) {
    ctx_t* x = p;
    atomic_store_explicit(&x->ready, 1, memory_order_release);
    while (!atomic_load_explicit(&x->stop, memory_order_acquire))
        if (!call_one(x->a)) _mm_pause();
}

// ------------------------------------------------------------------ one cache line (also the probe)
static _Alignas(LINE) _Atomic uint64_t g_word;
// Set by the pinger when it is done (early, at a probe deadline, or not). A flag of its own, not a value of g_word:
// a ponger in the middle of its reply would overwrite such a value and then wait forever.
static _Alignas(LINE) _Atomic int g_line_stop;

static void line_pinger(void* p) {
    ctx_t* x = p;
    int late = 0;
    for (unsigned spins = 1; !atomic_load_explicit(&x->ready, memory_order_acquire); spins++) {
        _mm_pause();   // the ponger may not even get a turn on its core when the machine is overloaded
        if ((spins & 1023) == 0 && x->deadline > 0 && now_s() > x->deadline) { late = 1; break; }
    }
    x->t0 = now_s();
    uint64_t i = 0;
    while (i < (uint64_t)x->n && !late) {
        atomic_store_explicit(&g_word, 2 * i + 1, memory_order_release);
        // With a deadline (the probe), look at the clock every 1024 pauses of a wait and every 16 round trips:
        // often enough to stop within about a millisecond, rarely enough not to change the figure.
        for (unsigned spins = 1; atomic_load_explicit(&g_word, memory_order_acquire) != 2 * i + 2; spins++) {
            _mm_pause();
            if ((spins & 1023) == 0 && x->deadline > 0 && now_s() > x->deadline) { late = 1; break; }
        }
        if (late) break;   // the round trip in flight is not counted
        i++;
        if ((i & 15) == 0 && x->deadline > 0 && now_s() > x->deadline) late = 1;
    }
    x->t1 = now_s();
    x->done = (long)i;
    atomic_store_explicit(&g_line_stop, 1, memory_order_release);
}

static void line_ponger(void* p) {
    ctx_t* x = p;
    atomic_store_explicit(&x->ready, 1, memory_order_release);
    for (uint64_t i = 0; i < (uint64_t)x->n; i++) {
        for (unsigned spins = 1; atomic_load_explicit(&g_word, memory_order_acquire) != 2 * i + 1; spins++) {
            _mm_pause();   // the stop flag is read rarely, so the bounce stays a one-line bounce
            if ((spins & 1023) == 0 && atomic_load_explicit(&g_line_stop, memory_order_acquire)) return;
        }
        atomic_store_explicit(&g_word, 2 * i + 2, memory_order_release);
    }
}

// ------------------------------------------------------------------ futex ping-pong, parked receivers
static _Alignas(LINE) _Atomic uint32_t g_req;
static _Alignas(LINE) _Atomic uint32_t g_rep;

static void futex_wait_for(_Atomic uint32_t* w, uint32_t want, long* waits, long* slept) {
    uint32_t cur;
    // No spinning: park at once, so every round trip pays two wake-ups (what this row measures).
    while ((cur = atomic_load_explicit(w, memory_order_acquire)) != want) {
        long rc = syscall(SYS_futex, (uint32_t*)w, FUTEX_WAIT_PRIVATE, cur, NULL, NULL, 0);
        (*waits)++;
        if (rc == 0) (*slept)++;   // 0: slept and was woken; EAGAIN: the value had already changed
    }
}

static void futex_wake_one(_Atomic uint32_t* w) {
    syscall(SYS_futex, (uint32_t*)w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void futex_pinger(void* p) {
    ctx_t* x = p;
    long waits = 0, slept = 0;
    wait_ready(x);
    usleep(1000);   // let the ponger park before the first request
    x->t0 = now_s();
    for (uint32_t i = 1; i <= (uint32_t)x->n; i++) {
        atomic_store_explicit(&g_req, i, memory_order_release);
        futex_wake_one(&g_req);
        futex_wait_for(&g_rep, i, &waits, &slept);
        seq_check(x->c, i - 1);
    }
    x->t1 = now_s();
    x->waits += waits; x->slept += slept;   // the ponger has finished its part before our last wait returned
}

static void futex_ponger(void* p) {
    ctx_t* x = p;
    long waits = 0, slept = 0;
    atomic_store_explicit(&x->ready, 1, memory_order_release);
    for (uint32_t i = 1; i <= (uint32_t)x->n; i++) {
        futex_wait_for(&g_req, i, &waits, &slept);
        if (i == (uint32_t)x->n) { x->waits += waits; x->slept += slept; }   // published before the last reply
        atomic_store_explicit(&g_rep, i, memory_order_release);
        futex_wake_one(&g_rep);
    }
}

// ------------------------------------------------------------------ main
// ns per round trip over the round trips completed before max_s (0 = no limit) ran out; 1e12 (1000 s) when
// not one completed, a reading no placement gate accepts.
static double line_round_trip_ns(long n, double max_s) {
    ctx_t x = { .n = n };
    atomic_store(&g_word, 0);
    atomic_store(&g_line_stop, 0);
    if (max_s > 0) x.deadline = now_s() + max_s;
    run_pair(line_pinger, line_ponger, &x);
    return x.done > 0 ? (x.t1 - x.t0) * 1e9 / x.done : 1e12;
}

int main(int argc, char** argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) fail("usage: percpu_native ring|batched|pingpong|line|futex N  |  probe [K] [MS]");
    const char* mode = argv[1];

    if (strcmp(mode, "probe") == 0) {   // one line per probe: ns per round trip of one cache line
        int k = argc > 2 ? atoi(argv[2]) : 1;
        int ms = argc > 3 ? atoi(argv[3]) : 0;
        // Warm-up: the first bounce of a fresh process pays page faults and thread start-up (seen as ~100x the
        // steady figure), which would read as a placement change.
        line_round_trip_ns(PROBE_N / 10, PROBE_MAX_S);
        for (int i = 0; i < k; i++) {
            if (i > 0 && ms > 0) usleep(ms * 1000);
            printf("%.1f\n", line_round_trip_ns(PROBE_N, PROBE_MAX_S));
        }
        return 0;
    }

    long n = argc > 2 ? atol(argv[2]) : 0;
    if (n <= 0) fail("N must be a positive count");
    if (n > 0xFFFFFFFFL && strcmp(mode, "futex") == 0) fail("futex: N must fit 32 bits");

    counter* c = aligned_alloc(LINE, sizeof(counter));
    if (!c) fail("out of memory");
    memset(c, 0, sizeof *c);
    ctx_t x = { .n = n, .a = ring_new(), .b = ring_new(), .c = c };
    char note[128] = "";

    if (strcmp(mode, "ring") == 0) {
        run_pair(ring_producer, ring_consumer, &x);
        verify(c, n, "ring");
        snprintf(note, sizeof note, "ring %d x 24 B, publish per message", RING);
    } else if (strcmp(mode, "batched") == 0) {
        run_pair(batched_producer, batched_consumer, &x);
        verify(c, n, "batched");
        snprintf(note, sizeof note, "ring %d x 24 B, publish every %d, drain + clear", RING, BATCH);
    } else if (strcmp(mode, "pingpong") == 0) {
        run_pair(pp_pinger, pp_ponger, &x);
        verify(c, n, "pingpong");
        snprintf(note, sizeof note, "two rings, busy poll");
    } else if (strcmp(mode, "line") == 0) {
        double ns = line_round_trip_ns(n, 0);
        printf("OK\t%.9f\t%ld\tone shared word\n", ns * n * 1e-9, n);
        return 0;
    } else if (strcmp(mode, "futex") == 0) {
        atomic_store(&g_req, 0);
        atomic_store(&g_rep, 0);
        run_pair(futex_pinger, futex_ponger, &x);
        verify(c, n, "futex");
        snprintf(note, sizeof note, "%.0f%% of %ld waits slept", x.waits ? 100.0 * x.slept / x.waits : 0.0, x.waits);
    } else {
        fail("unknown mode");
    }
    printf("OK\t%.9f\t%ld\t%s\n", x.t1 - x.t0, n, note);
    return 0;
}
