#ifndef RAG_KERNELS_H
#define RAG_KERNELS_H
#include <stddef.h>

/// Inner products of `query` with each of `rows` contiguous `dim`-float rows.
/// Dispatched once, at first use, to AVX-512F, AVX2+FMA or portable code by
/// what the CPU reports (cpuid), never by what the compiler assumed.
///
/// Every variant computes exactly the same floats: 64 fused multiply-add
/// lanes (element i goes to lane i mod 64), then one fixed reduction tree. So
/// a score does not depend on the CPU it was computed on, and replicas on
/// different hardware return the same ranking bit for bit.
void rag_dot_rows(const float *rows_base, size_t rows, size_t dim, const float *query, float *out);

/// The same over int8 rows: out[r] = sum_i float(rows[r*dim + i]) * query[i],
/// with the same 64 lanes and reduction on every CPU (int8 -> float is exact).
void rag_dot_rows_i8(const signed char *rows_base, size_t rows, size_t dim, const float *query, float *out);

/// One int8 row times a float query, with the same arithmetic as rag_dot_rows_i8.
float rag_dot_i8(const signed char *a, const float *b, size_t n);
/// One inner product, with the same arithmetic as rag_dot_rows.
float rag_dot(const float *a, const float *b, size_t n);

/// Asks the CPU to start loading `bytes` from `p` into cache (a graph search
/// prefetches the vectors of the neighbours it is about to score).
static inline void rag_prefetch(const void *p, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch((const char *)p + o, 0, 3);
}

/// The kernel chosen: "avx512", "avx2" or "portable".
const char *rag_kernel_name(void);

/// One inner product by a named variant (0 portable, 1 avx2, 2 avx512) if this
/// CPU has it: returns 0 and leaves *out alone otherwise. For tests.
int rag_dot_variant(int variant, const float *a, const float *b, size_t n, float *out);

/// One int8 row by a named variant, as rag_dot_variant. For tests.
int rag_dot_i8_variant(int variant, const signed char *a, const float *b, size_t n, float *out);

/// The benchmark's floor: a plain sum over `n` floats (every byte read once),
/// compiled for the CPU's widest vectors.
double rag_sum_floor(const float *v, size_t n);

#endif
