#include "rag_kernels.h"
#include <math.h>
#include <string.h>
#include <immintrin.h>
#include <pthread.h>

// The reduction every variant ends with: 64 lanes -> 16 ((g0 + g1) + (g2 + g3)
// per lane), then halving: lane i + lane i+8, i+4, i+2, i+1.
static inline float reduce16(const float l[16]) {
    float h8[8], h4[4], h2[2];
    for (int i = 0; i < 8; i++) h8[i] = l[i] + l[i + 8];
    for (int i = 0; i < 4; i++) h4[i] = h8[i] + h8[i + 4];
    for (int i = 0; i < 2; i++) h2[i] = h4[i] + h4[i + 2];
    return h2[0] + h2[1];
}

// 64 lanes in memory -> one float, as every variant does it.
static inline float reduce64(const float acc[64]) {
    float l[16];
    for (int i = 0; i < 16; i++) l[i] = (acc[i] + acc[i + 16]) + (acc[i + 32] + acc[i + 48]);
    return reduce16(l);
}

static float dot_portable(const float *a, const float *b, size_t n) {
    float acc[64];
    memset(acc, 0, sizeof acc);
    for (size_t i = 0; i < n; i++) acc[i & 63] = fmaf(a[i], b[i], acc[i & 63]);
    return reduce64(acc);
}

// The avx2 end of a dot: eight 8-lane accumulators (s[2g], s[2g+1] = lanes 16g..16g+15).
__attribute__((target("avx2")))
static inline float reduce256x8(const __m256 s[8]) {
    float l[16];
    _mm256_storeu_ps(l, _mm256_add_ps(_mm256_add_ps(s[0], s[2]), _mm256_add_ps(s[4], s[6])));
    _mm256_storeu_ps(l + 8, _mm256_add_ps(_mm256_add_ps(s[1], s[3]), _mm256_add_ps(s[5], s[7])));
    return reduce16(l);
}

__attribute__((target("avx2,fma")))
static float dot_avx2(const float *a, const float *b, size_t n) {
    __m256 s[8];
    for (int k = 0; k < 8; k++) s[k] = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int k = 0; k < 8; k++) s[k] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8 * k), _mm256_loadu_ps(b + i + 8 * k), s[k]);
    if (i < n) {  // the tail: lanes past n get 0 * 0, which leaves them as they are
        float ta[64] = {0}, tb[64] = {0};
        memcpy(ta, a + i, (n - i) * sizeof(float));
        memcpy(tb, b + i, (n - i) * sizeof(float));
        for (int k = 0; k < 8; k++) s[k] = _mm256_fmadd_ps(_mm256_loadu_ps(ta + 8 * k), _mm256_loadu_ps(tb + 8 * k), s[k]);
    }
    return reduce256x8(s);
}

// The avx512 end of a dot: four 16-lane accumulators (lanes 0-63) to one float.
__attribute__((target("avx512f")))
static inline float reduce512(__m512 s0, __m512 s1, __m512 s2, __m512 s3) {
    float l[16];
    _mm512_storeu_ps(l, _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
    return reduce16(l);
}

__attribute__((target("avx512f")))
static float dot_avx512(const float *a, const float *b, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    if (i < n) {
        __m512 *acc[4] = {&s0, &s1, &s2, &s3};
        for (int k = 0; k < 4 && i + 16 * (size_t)k < n; k++) {
            size_t left = n - i - 16 * (size_t)k;
            __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
            *acc[k] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i + 16 * k), _mm512_maskz_loadu_ps(m, b + i + 16 * k), *acc[k]);
        }
    }
    return reduce512(s0, s1, s2, s3);
}

// Four rows at a time when a row is whole 64-float blocks, one from each
// quarter of the block: four memory streams in flight, the query's loads shared. Per row, the same lanes and the
// same reduction as dot_avx512, so the same floats.
__attribute__((target("avx512f")))
static void dot_rows4_avx512(const float *r0, const float *r1, const float *r2, const float *r3, size_t dim, const float *q, float *out[4]) {
    __m512 a[4][4];
    for (int j = 0; j < 4; j++) for (int k = 0; k < 4; k++) a[j][k] = _mm512_setzero_ps();
    for (size_t i = 0; i < dim; i += 64) {
        for (int k = 0; k < 4; k++) {
            __m512 qk = _mm512_loadu_ps(q + i + 16 * k);
            a[0][k] = _mm512_fmadd_ps(_mm512_loadu_ps(r0 + i + 16 * k), qk, a[0][k]);
            a[1][k] = _mm512_fmadd_ps(_mm512_loadu_ps(r1 + i + 16 * k), qk, a[1][k]);
            a[2][k] = _mm512_fmadd_ps(_mm512_loadu_ps(r2 + i + 16 * k), qk, a[2][k]);
            a[3][k] = _mm512_fmadd_ps(_mm512_loadu_ps(r3 + i + 16 * k), qk, a[3][k]);
        }
    }
    for (int j = 0; j < 4; j++) *out[j] = reduce512(a[j][0], a[j][1], a[j][2], a[j][3]);
}

// ---- int8 rows (scalar quantisation): the float query times exact int8 -> float.

static float dot_i8_portable(const signed char *a, const float *b, size_t n) {
    float acc[64];
    memset(acc, 0, sizeof acc);
    for (size_t i = 0; i < n; i++) acc[i & 63] = fmaf((float)a[i], b[i], acc[i & 63]);
    return reduce64(acc);
}

__attribute__((target("avx2,fma")))
static float dot_i8_avx2(const signed char *a, const float *b, size_t n) {
    if (n % 64) return dot_i8_portable(a, b, n);
    __m256 s[8];
    for (int k = 0; k < 8; k++) s[k] = _mm256_setzero_ps();
    for (size_t i = 0; i < n; i += 64)
        for (int k = 0; k < 8; k++) {
            __m256 x = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(a + i + 8 * k))));
            s[k] = _mm256_fmadd_ps(x, _mm256_loadu_ps(b + i + 8 * k), s[k]);
        }
    return reduce256x8(s);
}

__attribute__((target("avx512f")))
static inline __m512 i8x16(const signed char *p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
}

__attribute__((target("avx512f")))
static float dot_i8_avx512(const signed char *a, const float *b, size_t n) {
    if (n % 64) return dot_i8_portable(a, b, n);
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 64) {
        s0 = _mm512_fmadd_ps(i8x16(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(i8x16(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(i8x16(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(i8x16(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    return reduce512(s0, s1, s2, s3);
}

// Four int8 rows at once (from four quarters of the block), query loads shared;
// per row the same lanes and reduction as dot_i8_avx512.
__attribute__((target("avx512f")))
static void dot_i8_rows4_avx512(const signed char *r[4], size_t dim, const float *q, float *out[4]) {
    __m512 a[4][4];
    for (int j = 0; j < 4; j++) for (int k = 0; k < 4; k++) a[j][k] = _mm512_setzero_ps();
    for (size_t i = 0; i < dim; i += 64)
        for (int k = 0; k < 4; k++) {
            __m512 qk = _mm512_loadu_ps(q + i + 16 * k);
            for (int j = 0; j < 4; j++) a[j][k] = _mm512_fmadd_ps(i8x16(r[j] + i + 16 * k), qk, a[j][k]);
        }
    for (int j = 0; j < 4; j++) *out[j] = reduce512(a[j][0], a[j][1], a[j][2], a[j][3]);
}

typedef float (*dot_i8_fn)(const signed char *, const float *, size_t);
static dot_i8_fn chosen_i8 = 0;

typedef float (*dot_fn)(const float *, const float *, size_t);
static dot_fn chosen = 0;
static const char *chosen_name = "portable";

static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

static void choose_once(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) { chosen_name = "avx512"; chosen = dot_avx512; chosen_i8 = dot_i8_avx512; }
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) { chosen_name = "avx2"; chosen = dot_avx2; chosen_i8 = dot_i8_avx2; }
    else { chosen_name = "portable"; chosen = dot_portable; chosen_i8 = dot_i8_portable; }
}

static inline void choose(void) { pthread_once(&chosen_once, choose_once); }

float rag_dot(const float *a, const float *b, size_t n) {
    choose();
    return chosen(a, b, n);
}

void rag_dot_rows(const float *rows_base, size_t rows, size_t dim, const float *query, float *out) {
    choose();
    dot_fn f = chosen;
    size_t r = 0;
    if (f == dot_avx512 && dim % 64 == 0 && rows >= 4) {
        size_t quarter = rows / 4;
        for (; r < quarter; r++) {
            float *o[4] = {out + r, out + r + quarter, out + r + 2 * quarter, out + r + 3 * quarter};
            dot_rows4_avx512(rows_base + r * dim, rows_base + (r + quarter) * dim, rows_base + (r + 2 * quarter) * dim,
                             rows_base + (r + 3 * quarter) * dim, dim, query, o);
        }
        r = 4 * quarter;
    }
    for (; r < rows; r++) out[r] = f(rows_base + r * dim, query, dim);
}

float rag_dot_i8(const signed char *a, const float *b, size_t n) {
    choose();
    return chosen_i8(a, b, n);
}

void rag_dot_rows_i8(const signed char *rows_base, size_t rows, size_t dim, const float *query, float *out) {
    choose();
    dot_i8_fn f = chosen_i8;
    // Four streams: rows from the four quarters of the block at once.
    size_t quarter = rows / 4, r = 0;
    if (f == dot_i8_avx512 && dim % 64 == 0) {
        for (; r < quarter; r++) {
            const signed char *rs[4] = {rows_base + r * dim, rows_base + (r + quarter) * dim, rows_base + (r + 2 * quarter) * dim, rows_base + (r + 3 * quarter) * dim};
            float *o[4] = {out + r, out + r + quarter, out + r + 2 * quarter, out + r + 3 * quarter};
            dot_i8_rows4_avx512(rs, dim, query, o);
        }
    }
    for (; r < quarter; r++) {
        out[r] = f(rows_base + r * dim, query, dim);
        out[r + quarter] = f(rows_base + (r + quarter) * dim, query, dim);
        out[r + 2 * quarter] = f(rows_base + (r + 2 * quarter) * dim, query, dim);
        out[r + 3 * quarter] = f(rows_base + (r + 3 * quarter) * dim, query, dim);
    }
    for (r = 4 * quarter; r < rows; r++) out[r] = f(rows_base + r * dim, query, dim);
}

int rag_dot_i8_variant(int variant, const signed char *a, const float *b, size_t n, float *out) {
    __builtin_cpu_init();
    switch (variant) {
    case 0: *out = dot_i8_portable(a, b, n); return 1;
    case 1: if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return 0; *out = dot_i8_avx2(a, b, n); return 1;
    case 2: if (!__builtin_cpu_supports("avx512f")) return 0; *out = dot_i8_avx512(a, b, n); return 1;
    default: return 0;
    }
}

int rag_dot_variant(int variant, const float *a, const float *b, size_t n, float *out) {
    __builtin_cpu_init();
    switch (variant) {
    case 0: *out = dot_portable(a, b, n); return 1;
    case 1: if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return 0; *out = dot_avx2(a, b, n); return 1;
    case 2: if (!__builtin_cpu_supports("avx512f")) return 0; *out = dot_avx512(a, b, n); return 1;
    default: return 0;
    }
}

const char *rag_kernel_name(void) {
    choose();
    return chosen_name;
}

// Four streams (the four quarters of the array at once), as the scan reads
// four rows at once: a floor that a scan cannot beat by parallelism alone.
__attribute__((target("avx512f")))
static double sum_avx512(const float *v, size_t n) {
    size_t quarter = (n / 4) & ~(size_t)15;
    const float *p0 = v, *p1 = v + quarter, *p2 = v + 2 * quarter, *p3 = v + 3 * quarter;
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    for (size_t i = 0; i < quarter; i += 16) {
        s0 = _mm512_add_ps(s0, _mm512_loadu_ps(p0 + i));
        s1 = _mm512_add_ps(s1, _mm512_loadu_ps(p1 + i));
        s2 = _mm512_add_ps(s2, _mm512_loadu_ps(p2 + i));
        s3 = _mm512_add_ps(s3, _mm512_loadu_ps(p3 + i));
    }
    double t = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
    for (size_t i = 4 * quarter; i < n; i++) t += v[i];
    return t;
}

__attribute__((target("avx2")))
static double sum_avx2(const float *v, size_t n) {
    __m256 s[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++) s[k] = _mm256_add_ps(s[k], _mm256_loadu_ps(v + i + 8 * k));
    float l[8];
    _mm256_storeu_ps(l, _mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3])));
    double t = 0;
    for (int k = 0; k < 8; k++) t += l[k];
    for (; i < n; i++) t += v[i];
    return t;
}

double rag_sum_floor(const float *v, size_t n) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return sum_avx512(v, n);
    if (__builtin_cpu_supports("avx2")) return sum_avx2(v, n);
    double t = 0;
    for (size_t i = 0; i < n; i++) t += v[i];
    return t;
}
