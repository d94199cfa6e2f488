#ifndef RAG_ENCODER_H
#define RAG_ENCODER_H
#include <stddef.h>
#include <stdint.h>

/// Kernels for the transformer encoder (MiniLM): int8 linear layers, attention
/// heads, GELU and LayerNorm. Chosen once at run time by what the CPU reports
/// (cpuid): AVX-512 VNNI, AVX-512F or portable C. Ragd never relies on a BLAS
/// guessing the CPU (Debian's OpenBLAS 0.3.21 takes a Sapphire Rapids for a
/// Prescott and runs SSE3 kernels).

/// A Linear layer's weight W [m x k] (PyTorch layout: y = x W^T + b), quantised
/// to int8 per output row (scale = max |W[o,:]| / 127) and packed for the kernels.
typedef struct rag_qlinear rag_qlinear;

/// Packs `w` (m x k floats). `input_range` (k floats, or NULL) estimates each
/// input channel's largest magnitude: channels with outliers are then scaled
/// down before quantisation and their weight columns up (SmoothQuant, alpha
/// 0.5), so that one outlier does not coarsen the int8 steps of a whole row.
/// Returns NULL when out of memory.
rag_qlinear *rag_qlinear_make(const float *w, const float *bias, size_t m, size_t k, const float *input_range);
void rag_qlinear_free(rag_qlinear *layer);

/// y[n x m] = x[n x k] W^T + b. Each row of x is quantised to int8 with its own
/// scale (max |x[r,:]| / 127); products are summed exactly in int32, so every
/// variant gives the same floats. `scratch` holds at least n * (k + 8) + 64 bytes.
void rag_qlinear_apply(const rag_qlinear *layer, const float *x, size_t n, float *y, uint8_t *scratch);

/// The same with a named variant (0 portable, 2 avx512-vnni) if this CPU has
/// it; returns 0 otherwise. For tests.
int rag_qlinear_apply_variant(int variant, const rag_qlinear *layer, const float *x, size_t n, float *y, uint8_t *scratch);

/// One attention head over n tokens: context[i, 0..<32] = softmax_j(scale *
/// q_i . k_j) v_j, where q, k, v are column blocks of a row-major matrix with
/// row stride `stride`, and context one of a matrix with row stride
/// `context_stride`. `scratch` (64-byte aligned) holds at least
/// (32 + n) * pad64(n) floats, pad64(n) = n rounded up to a multiple of 64.
void rag_attention_head(const float *q, const float *k, const float *v, size_t n, size_t stride, float scale,
                        float *context, size_t context_stride, float *scratch);

/// x = LayerNorm(x + residual) per row of d (residual may be NULL), biased
/// variance as PyTorch.
void rag_add_layernorm(float *x, const float *residual, size_t n, size_t d, const float *gamma, const float *beta, float eps);

/// x = 0.5 x (1 + erf(x / sqrt 2)) in place (exact GELU; erf to 1.5e-7).
void rag_gelu(float *x, size_t count);

/// "avx512-vnni", "avx512" or "portable".
const char *rag_encoder_kernel_name(void);

#endif
