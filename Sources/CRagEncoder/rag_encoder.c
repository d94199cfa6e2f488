#include "rag_encoder.h"
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// The dequantisation must round the same way in every variant: no fused
// multiply-adds that the compiler chooses on its own.
#pragma clang fp contract(off)

struct rag_qlinear {
    size_t m, k, kp, panels;  // outputs, inputs, inputs rounded up to 4, 64-output panels
    int8_t *packed;           // [panels][kp / 4][64 outputs][4 inputs]
    int8_t *rows;             // [m][kp], for the portable variant
    float *scale;             // [panels * 64], 0 past m
    int32_t *sum;             // [panels * 64], sum of the row's int8 weights
    float *bias;              // [panels * 64]
    float *smooth;            // [k] 1 / s_c: inputs are divided by s_c, weight columns multiplied (NULL: none)
};

static void *aligned(size_t bytes) {
    void *p = NULL;
    return posix_memalign(&p, 64, bytes ? bytes : 64) == 0 ? p : NULL;
}

rag_qlinear *rag_qlinear_make(const float *w_in, const float *bias, size_t m, size_t k, const float *input_range) {
    rag_qlinear *L = calloc(1, sizeof *L);
    if (!L) return NULL;
    L->m = m; L->k = k; L->kp = (k + 3) & ~(size_t)3; L->panels = (m + 63) / 64;
    size_t mp = L->panels * 64;
    L->packed = aligned(mp * L->kp);
    L->rows = aligned(m * L->kp);
    L->scale = aligned(mp * sizeof(float));
    L->sum = aligned(mp * sizeof(int32_t));
    L->bias = aligned(mp * sizeof(float));
    float *w = malloc(m * k * sizeof(float));
    if (input_range) L->smooth = malloc(k * sizeof(float));
    if (!L->packed || !L->rows || !L->scale || !L->sum || !L->bias || !w || (input_range && !L->smooth)) { free(w); rag_qlinear_free(L); return NULL; }
    memcpy(w, w_in, m * k * sizeof(float));
    if (input_range) {
        // SmoothQuant (alpha 0.5): s_c = sqrt(range of input c / range of weight column c)
        // moves an outlier channel's range from the activations into the weights.
        for (size_t i = 0; i < k; i++) {
            float wmax = 0;
            for (size_t o = 0; o < m; o++) wmax = fmaxf(wmax, fabsf(w[o * k + i]));
            float s = input_range[i] > 0 && wmax > 0 ? sqrtf(input_range[i] / wmax) : 1.0f;
            L->smooth[i] = 1.0f / s;
            for (size_t o = 0; o < m; o++) w[o * k + i] *= s;
        }
    }
    memset(L->packed, 0, mp * L->kp);
    memset(L->rows, 0, m * L->kp);
    for (size_t o = 0; o < mp; o++) {
        L->scale[o] = 0; L->sum[o] = 0; L->bias[o] = o < m && bias ? bias[o] : 0;
        if (o >= m) continue;
        float maxabs = 0;
        for (size_t i = 0; i < k; i++) maxabs = fmaxf(maxabs, fabsf(w[o * k + i]));
        float inv = maxabs > 0 ? 127.0f / maxabs : 0;
        L->scale[o] = maxabs / 127.0f;
        int32_t s = 0;
        size_t p = o / 64, lane = o % 64;
        for (size_t i = 0; i < k; i++) {
            long q = lrintf(w[o * k + i] * inv);
            int8_t b = (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
            L->rows[o * L->kp + i] = b;
            L->packed[((p * (L->kp / 4) + i / 4) * 64 + lane) * 4 + i % 4] = b;
            s += b;
        }
        L->sum[o] = s;
    }
    free(w);
    return L;
}

void rag_qlinear_free(rag_qlinear *L) {
    if (!L) return;
    free(L->packed); free(L->rows); free(L->scale); free(L->sum); free(L->bias); free(L->smooth);
    free(L);
}

// Each row of x to int8 (symmetric, its own scale), stored shifted by +128 as
// uint8 (what VNNI multiplies), zero-padded to kp. Shared by every variant.
static float *quantise_rows(const rag_qlinear *L, const float *x, size_t n, uint8_t *scratch) {
    size_t k = L->k, kp = L->kp;
    const float *sm = L->smooth;
    float *sx = (float *)(void *)(scratch + ((n * kp + 63) & ~(size_t)63));
    for (size_t r = 0; r < n; r++) {
        const float *row = x + r * k;
        float maxabs = 0;
        for (size_t i = 0; i < k; i++) maxabs = fmaxf(maxabs, fabsf(sm ? row[i] * sm[i] : row[i]));
        float inv = maxabs > 0 ? 127.0f / maxabs : 0;
        sx[r] = maxabs / 127.0f;
        uint8_t *out = scratch + r * kp;
        for (size_t i = 0; i < k; i++) {
            long q = lrintf((sm ? row[i] * sm[i] : row[i]) * inv);
            out[i] = (uint8_t)((q > 127 ? 127 : q < -127 ? -127 : q) + 128);
        }
        for (size_t i = k; i < kp; i++) out[i] = 128;
    }
    return sx;
}

__attribute__((target_clones("avx2", "default")))
static void apply_portable(const rag_qlinear *L, const uint8_t *xu, const float *sx, size_t n, float *y) {
    size_t kp = L->kp;
    for (size_t r = 0; r < n; r++)
        for (size_t o = 0; o < L->m; o++) {
            const int8_t *w = L->rows + o * kp;
            const uint8_t *a = xu + r * kp;
            int32_t acc = 0;
            for (size_t i = 0; i < kp; i++) acc += ((int32_t)a[i] - 128) * (int32_t)w[i];
            float f = (float)acc;
            float s = sx[r] * L->scale[o];
            y[r * L->m + o] = f * s + L->bias[o];
        }
}

// R rows of x against one 64-output panel: 4R accumulators of 16 int32 lanes.
#define VNNI_ROWS(R)                                                                                        \
    __attribute__((target("avx512f,avx512bw,avx512vnni")))                                                 \
    static void vnni_rows##R(const rag_qlinear *L, const uint8_t *xu, const float *sx, size_t p, float *y) { \
        size_t kp = L->kp;                                                                                  \
        __m512i acc[R][4];                                                                                  \
        for (int r = 0; r < R; r++)                                                                         \
            for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_si512();                                 \
        const int8_t *w = L->packed + p * 64 * kp;                                                          \
        for (size_t g = 0; g < kp / 4; g++, w += 256) {                                                     \
            __m512i w0 = _mm512_load_si512(w), w1 = _mm512_load_si512(w + 64);                             \
            __m512i w2 = _mm512_load_si512(w + 128), w3 = _mm512_load_si512(w + 192);                      \
            for (int r = 0; r < R; r++) {                                                                   \
                int32_t four;                                                                               \
                memcpy(&four, xu + r * kp + 4 * g, 4);                                                      \
                __m512i a = _mm512_set1_epi32(four);                                                        \
                acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], a, w0);                                          \
                acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], a, w1);                                          \
                acc[r][2] = _mm512_dpbusd_epi32(acc[r][2], a, w2);                                          \
                acc[r][3] = _mm512_dpbusd_epi32(acc[r][3], a, w3);                                          \
            }                                                                                               \
        }                                                                                                   \
        for (int c = 0; c < 4; c++) {                                                                       \
            size_t o = p * 64 + 16 * (size_t)c;                                                             \
            if (o >= L->m) break;                                                                           \
            __mmask16 mask = L->m - o >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (L->m - o)) - 1);      \
            __m512i shift = _mm512_slli_epi32(_mm512_load_si512(L->sum + o), 7);                            \
            __m512 ws = _mm512_load_ps(L->scale + o), b = _mm512_load_ps(L->bias + o);                      \
            for (int r = 0; r < R; r++) {                                                                   \
                __m512 f = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][c], shift));                          \
                __m512 s = _mm512_mul_ps(_mm512_set1_ps(sx[r]), ws);                                        \
                _mm512_mask_storeu_ps(y + (size_t)r * L->m + o, mask, _mm512_add_ps(_mm512_mul_ps(f, s), b)); \
            }                                                                                               \
        }                                                                                                   \
    }
VNNI_ROWS(6)
VNNI_ROWS(1)

static void apply_vnni(const rag_qlinear *L, const uint8_t *xu, const float *sx, size_t n, float *y) {
    // Panel by panel, so a panel's weights (64 k bytes) stay in cache across row blocks.
    for (size_t p = 0; p < L->panels; p++) {
        size_t r = 0;
        for (; r + 6 <= n; r += 6) vnni_rows6(L, xu + r * L->kp, sx + r, p, y + r * L->m);
        for (; r < n; r++) vnni_rows1(L, xu + r * L->kp, sx + r, p, y + r * L->m);
    }
}

// MARK: - Attention, GELU, LayerNorm

// Cephes' expf: a degree-6 polynomial after reduction by ln 2 (about 1 ulp).
static inline float exp_portable(float x) {
    x = fminf(fmaxf(x, -87.3f), 88.7f);
    float fx = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - fx * 0.693359375f - fx * -2.12194440e-4f;
    float y = ((((((1.9875691500E-4f * r + 1.3981999507E-3f) * r + 8.3334519073E-3f) * r + 4.1665795894E-2f) * r
                 + 1.6666665459E-1f) * r + 5.0000001201E-1f) * r * r) + r + 1.0f;
    return ldexpf(y, (int)fx);
}

__attribute__((target("avx512f")))
static inline __m512 exp512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.7f));
    __m512 fx = _mm512_roundscale_ps(_mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _mm512_set1_ps(0.5f)),
                                     _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_sub_ps(_mm512_sub_ps(x, _mm512_mul_ps(fx, _mm512_set1_ps(0.693359375f))), _mm512_mul_ps(fx, _mm512_set1_ps(-2.12194440e-4f)));
    __m512 y = _mm512_set1_ps(1.9875691500E-4f);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507E-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073E-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894E-2f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459E-1f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201E-1f));
    y = _mm512_add_ps(_mm512_fmadd_ps(y, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(y, fx);
}

__attribute__((target_clones("avx2", "default")))
static void attention_portable(const float *q, const float *k, const float *v, size_t n, size_t stride, float scale,
                               float *ctx, size_t ctx_stride, float *scratch) {
    float *s = scratch;
    for (size_t i = 0; i < n; i++) {
        float m = -INFINITY;
        for (size_t j = 0; j < n; j++) {
            float acc = 0;
            for (size_t t = 0; t < 32; t++) acc += q[i * stride + t] * k[j * stride + t];
            s[j] = acc * scale;
            m = fmaxf(m, s[j]);
        }
        float sum = 0;
        for (size_t j = 0; j < n; j++) { s[j] = exp_portable(s[j] - m); sum += s[j]; }
        float inv = 1.0f / sum;
        for (size_t t = 0; t < 32; t++) {
            float acc = 0;
            for (size_t j = 0; j < n; j++) acc += s[j] * v[j * stride + t];
            ctx[i * ctx_stride + t] = acc * inv;
        }
    }
}

__attribute__((target("avx512f")))
static void attention_avx512(const float *q, const float *k, const float *v, size_t n, size_t stride, float scale,
                             float *ctx, size_t ctx_stride, float *scratch) {
    size_t np = (n + 63) & ~(size_t)63;
    float *kT = scratch, *S = scratch + 32 * np;  // K transposed [32][np], scores [n][np]
    for (size_t t = 0; t < 32; t++) {
        for (size_t j = 0; j < n; j++) kT[t * np + j] = k[j * stride + t];
        for (size_t j = n; j < np; j++) kT[t * np + j] = 0;
    }
    __m512 sc = _mm512_set1_ps(scale);
    for (size_t i = 0; i < n; i += 2) {
        size_t i1 = i + 1 < n ? i + 1 : i;  // an odd last row is computed twice
        for (size_t jb = 0; jb < np; jb += 64) {
            __m512 a[4], b[4];
            for (int c = 0; c < 4; c++) a[c] = b[c] = _mm512_setzero_ps();
            for (size_t t = 0; t < 32; t++) {
                __m512 qa = _mm512_set1_ps(q[i * stride + t]), qb = _mm512_set1_ps(q[i1 * stride + t]);
                for (int c = 0; c < 4; c++) {
                    __m512 kv = _mm512_load_ps(kT + t * np + jb + 16 * c);
                    a[c] = _mm512_fmadd_ps(qa, kv, a[c]);
                    b[c] = _mm512_fmadd_ps(qb, kv, b[c]);
                }
            }
            for (int c = 0; c < 4; c++) {
                _mm512_store_ps(S + i * np + jb + 16 * c, _mm512_mul_ps(a[c], sc));
                _mm512_store_ps(S + i1 * np + jb + 16 * c, _mm512_mul_ps(b[c], sc));
            }
        }
    }
    // Softmax per row over the n real columns; padding columns become 0.
    for (size_t i = 0; i < n; i++) {
        float *row = S + i * np;
        __m512 mx = _mm512_set1_ps(-INFINITY);
        for (size_t j = 0; j < np; j += 16) {
            __mmask16 live = j >= n ? 0 : n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
            mx = _mm512_mask_max_ps(mx, live, mx, _mm512_load_ps(row + j));
        }
        __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
        __m512 sum = _mm512_setzero_ps();
        for (size_t j = 0; j < np; j += 16) {
            __mmask16 live = j >= n ? 0 : n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
            __m512 e = _mm512_maskz_mov_ps(live, exp512(_mm512_sub_ps(_mm512_load_ps(row + j), m)));
            _mm512_store_ps(row + j, e);
            sum = _mm512_add_ps(sum, e);
        }
        float inv = 1.0f / _mm512_reduce_add_ps(sum);
        __m512 iv = _mm512_set1_ps(inv);
        for (size_t j = 0; j < np; j += 16) _mm512_store_ps(row + j, _mm512_mul_ps(_mm512_load_ps(row + j), iv));
    }
    // context = P V: four rows at a time, 32 outputs each (two vectors).
    for (size_t i = 0; i < n; i += 4) {
        size_t rows = n - i < 4 ? n - i : 4;
        __m512 acc[4][2];
        for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
        for (size_t j = 0; j < n; j++) {
            __m512 v0 = _mm512_loadu_ps(v + j * stride), v1 = _mm512_loadu_ps(v + j * stride + 16);
            for (size_t r = 0; r < 4; r++) {
                __m512 p = _mm512_set1_ps(S[(i + (r < rows ? r : 0)) * np + j]);
                acc[r][0] = _mm512_fmadd_ps(p, v0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(p, v1, acc[r][1]);
            }
        }
        for (size_t r = 0; r < rows; r++) {
            _mm512_storeu_ps(ctx + (i + r) * ctx_stride, acc[r][0]);
            _mm512_storeu_ps(ctx + (i + r) * ctx_stride + 16, acc[r][1]);
        }
    }
}

// erf by Abramowitz & Stegun 7.1.26 (absolute error 1.5e-7).
static inline float gelu_portable(float x) {
    float z = fabsf(x) * 0.70710678118654752f;
    float t = 1.0f / (1.0f + 0.3275911f * z);
    float poly = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
    float e = 1.0f - poly * exp_portable(-z * z);
    return 0.5f * x * (1.0f + (x < 0 ? -e : e));
}

__attribute__((target("avx512f")))
static void gelu_avx512(float *x, size_t count) {
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m512 z = _mm512_mul_ps(_mm512_abs_ps(v), _mm512_set1_ps(0.70710678118654752f));
        __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(z, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.0f)));
        __m512 p = _mm512_set1_ps(1.061405429f);
        p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
        p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
        p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
        p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
        p = _mm512_mul_ps(p, t);
        __m512 e = _mm512_fnmadd_ps(p, exp512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(z, z))), _mm512_set1_ps(1.0f));
        __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
        e = _mm512_mask_sub_ps(e, neg, _mm512_setzero_ps(), e);
        _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), _mm512_add_ps(_mm512_set1_ps(1.0f), e)));
    }
    for (; i < count; i++) x[i] = gelu_portable(x[i]);
}

void rag_add_layernorm(float *x, const float *residual, size_t n, size_t d, const float *g, const float *b, float eps) {
    for (size_t r = 0; r < n; r++) {
        float *row = x + r * d;
        if (residual)
            for (size_t c = 0; c < d; c++) row[c] += residual[r * d + c];
        float mean = 0;
        for (size_t c = 0; c < d; c++) mean += row[c];
        mean /= (float)d;
        float var = 0;
        for (size_t c = 0; c < d; c++) { float z = row[c] - mean; var += z * z; }
        var /= (float)d;
        float inv = 1.0f / sqrtf(var + eps);
        for (size_t c = 0; c < d; c++) row[c] = (row[c] - mean) * inv * g[c] + b[c];
    }
}

// MARK: - Dispatch

static int variant;  // 0 portable, 1 avx512, 2 avx512 + vnni
static pthread_once_t chosen = PTHREAD_ONCE_INIT;
static void choose_once(void) {
    __builtin_cpu_init();
    // RAGD_ENCODER_KERNEL=portable: what a CPU without AVX-512 runs (benchmarks, tests).
    const char *forced = getenv("RAGD_ENCODER_KERNEL");
    if (forced && strcmp(forced, "portable") == 0) return;
    if (__builtin_cpu_supports("avx512f")) variant = 1;
    if (variant == 1 && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni")) variant = 2;
}
static inline int chosen_variant(void) { pthread_once(&chosen, choose_once); return variant; }

int rag_qlinear_apply_variant(int v, const rag_qlinear *L, const float *x, size_t n, float *y, uint8_t *scratch) {
    if (v != 0 && !(v == 2 && chosen_variant() == 2)) return 0;
    const float *sx = quantise_rows(L, x, n, scratch);
    if (v == 2) apply_vnni(L, scratch, sx, n, y); else apply_portable(L, scratch, sx, n, y);
    return 1;
}

void rag_qlinear_apply(const rag_qlinear *L, const float *x, size_t n, float *y, uint8_t *scratch) {
    rag_qlinear_apply_variant(chosen_variant() == 2 ? 2 : 0, L, x, n, y, scratch);
}

void rag_attention_head(const float *q, const float *k, const float *v, size_t n, size_t stride, float scale,
                        float *ctx, size_t ctx_stride, float *scratch) {
    if (n == 0) return;
    if (chosen_variant() >= 1) attention_avx512(q, k, v, n, stride, scale, ctx, ctx_stride, scratch);
    else attention_portable(q, k, v, n, stride, scale, ctx, ctx_stride, scratch);
}

void rag_gelu(float *x, size_t count) {
    if (chosen_variant() >= 1) { gelu_avx512(x, count); return; }
    for (size_t i = 0; i < count; i++) x[i] = gelu_portable(x[i]);
}

const char *rag_encoder_kernel_name(void) {
    switch (chosen_variant()) {
    case 2: return "avx512-vnni";
    case 1: return "avx512";
    default: return "portable";
    }
}
