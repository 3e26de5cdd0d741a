// 2x2 max-pool -> ReLU -> dropout of one conv block, fused, for channels_last (NHWC) float32 and bfloat16
// tensors on the CPU. Loaded by backends/torch/fused.py through ctypes (plain C entry points, no torch headers,
// so it compiles in about a second); that file says why it exists and how it is checked.
//
// Forward reads each conv output once and writes the block's output plus one byte per output element, its
// "route": which of the 4 window positions held the max (0..3), or BLOCKED when no gradient flows back through
// it (ReLU's input <= 0, or the unit dropped). Backward reads the incoming gradient and the routes and writes
// every element of the conv output's gradient exactly once. Eager torch needs 9 passes over memory for the same
// work: the max-pool's int64 indices, a zero-fill and a scatter for its backward, a float32 uniform per element
// for the dropout mask, and a pass each for ReLU, the mask and their two backwards.
//
// Semantics, as torch's MaxPool2d(2) -> ReLU -> Dropout(p) (backends/torch/model.py):
// - windows are 2x2 with stride 2; an odd last row or column is dropped (floor), as MaxPool2d(2) does, and gets
//   a zero gradient;
// - the max is the first maximal element in row-major window order, as torch's CPU max-pool picks it (ties then
//   route the gradient to the same element); NaN wins any comparison, as in torch;
// - dropout keeps a unit when 24 random bits u satisfy u >= keep_threshold (= ceil(p * 2^24), which is exactly
//   torch.rand(...) >= p on its 24-bit floats) and scales kept units by `scale` (= 1 / (1 - p));
// - bfloat16 values are computed in float32 and rounded to nearest even, as torch rounds them.
//
// Random bits: SplitMix64 (Steele, Lea & Flood 2014) of (seed, output index) - counter based, so any thread can
// draw any element's bits, and a run is reproducible from the per-call seed that fused.py draws from torch's
// generator (which torch.manual_seed sets).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

constexpr uint8_t BLOCKED = 4;

// Loads and stores in float32; written without branches so that the compiler vectorizes the channel loops.
inline float to_float(float v) { return v; }
inline float to_float(uint16_t v) {
  uint32_t bits = uint32_t(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline float from_float(float v, float*) { return v; }
inline uint16_t from_float(float v, uint16_t*) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;  // to nearest, ties to even
  return uint16_t(v != v ? 0x7FC0u : rounded);                            // torch's bfloat16 NaN
}

inline uint32_t random24(uint64_t seed, uint64_t counter) {
  uint64_t z = seed + (counter + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return uint32_t(z >> 40);  // the top 24 bits
}

// Runs body(first, last) over [0, n) split into `threads` contiguous parts, one per thread. Built with
// -fopenmp, this is torch's own OpenMP thread pool (the library links libgomp.so.1, the one torch has loaded):
// threads of a second pool would compete with torch's, which spin for a while after each op (that cost 70 %
// on this kernel's time in a training step). Without OpenMP, plain threads.
template <typename Body>
void parallel_for(int64_t n, int threads, Body body) {
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, n)));
  const int64_t chunk = (n + threads - 1) / threads;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static, 1)
  for (int t = 0; t < threads; ++t) {
    const int64_t first = t * chunk, last = std::min(n, first + chunk);
    if (first < last) body(first, last);
  }
#else
  std::vector<std::thread> workers;
  for (int t = 1; t < threads; ++t) {
    const int64_t first = t * chunk, last = std::min(n, first + chunk);
    if (first < last) workers.emplace_back(body, first, last);
  }
  body(int64_t(0), std::min(n, chunk));
  for (auto& worker : workers) worker.join();
#endif
}

#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
// AVX2 without AVX-512 (built with -march=x86-64-v3, or on such a CPU): float32 cells by hand, 8 channels at a
// time. GCC's own vectorization of the loops below needs AVX-512's 64-bit multiplies and masks; with AVX2 it ran
// 6-10x slower than with AVX-512 (forward 373 ms, backward 245 ms for the first block at 180 px, batch 32, one
// thread, against 34 and 37). Same operations, same order, same bits: SplitMix64's multiplies from 32-bit ones.
#include <immintrin.h>
#define POOL_AVX2 1

// a * k mod 2^64 in each 64-bit lane.
inline __m256i mul64(__m256i a, uint64_t k) {
  const __m256i klo = _mm256_set1_epi64x(int64_t(k & 0xFFFFFFFFull)), khi = _mm256_set1_epi64x(int64_t(k >> 32));
  const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), klo), _mm256_mul_epu32(a, khi));
  return _mm256_add_epi64(_mm256_mul_epu32(a, klo), _mm256_slli_epi64(cross, 32));
}

// random24 of 4 consecutive counters, given z = seed + (counter + 1) * golden for each.
inline __m256i mix24(__m256i z) {
  z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), 0xBF58476D1CE4E5B9ull);
  z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), 0x94D049BB133111EBull);
  z = _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
  return _mm256_srli_epi64(z, 40);
}

// random24(seed, first .. first + 7) as 8 int32 lanes, in order.
inline __m256i random24x8(uint64_t seed, uint64_t first) {
  constexpr uint64_t G = 0x9E3779B97F4A7C15ull;
  const uint64_t base = seed + (first + 1) * G;
  const __m256i lo = _mm256_set_epi64x(int64_t(base + 3 * G), int64_t(base + 2 * G), int64_t(base + G), int64_t(base));
  const __m256i hi = _mm256_add_epi64(lo, _mm256_set1_epi64x(int64_t(4 * G)));
  const __m256i both = _mm256_or_si256(mix24(lo), _mm256_slli_epi64(mix24(hi), 32));  // a0 b0 a1 b1 ...
  return _mm256_permutevar8x32_epi32(both, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
}

// The first 8 * (c / 8) channels of forward_cell<float>; returns how many it did.
template <bool kRoutes>
inline int64_t forward_cell_avx2(const float* w0, const float* w1, const float* w2, const float* w3, float* out,
                                 uint8_t* route, int64_t c, uint64_t first_index, uint32_t keep_threshold,
                                 float scale, uint64_t seed) {
  const __m256 zero = _mm256_setzero_ps(), vscale = _mm256_set1_ps(scale);
  const __m256i threshold = _mm256_set1_epi32(int32_t(keep_threshold)), blocked = _mm256_set1_epi32(BLOCKED);
  int64_t k = 0;
  for (; k + 8 <= c; k += 8) {
    __m256 best = _mm256_loadu_ps(w0 + k);
    __m256i where = _mm256_setzero_si256();
    const float* rest[3] = {w1, w2, w3};
    for (int i = 0; i < 3; ++i) {
      const __m256 v = _mm256_loadu_ps(rest[i] + k);
      const __m256 wins = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
      best = _mm256_blendv_ps(best, v, wins);
      where = _mm256_blendv_epi8(where, _mm256_set1_epi32(i + 1), _mm256_castps_si256(wins));
    }
    const __m256i dropped = _mm256_cmpgt_epi32(threshold, random24x8(seed, first_index + uint64_t(k)));
    const __m256 positive = _mm256_cmp_ps(best, zero, _CMP_NLE_UQ);  // best > 0, or NaN
    const __m256 passes = _mm256_andnot_ps(_mm256_castsi256_ps(dropped), positive);
    _mm256_storeu_ps(out + k, _mm256_and_ps(passes, _mm256_mul_ps(best, vscale)));
    if (kRoutes) {
      const __m256i r = _mm256_blendv_epi8(blocked, where, _mm256_castps_si256(passes));
      const __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(r, r), _mm256_setzero_si256());
      const uint32_t first4 = uint32_t(_mm256_extract_epi32(bytes, 0)), last4 = uint32_t(_mm256_extract_epi32(bytes, 4));
      std::memcpy(route + k, &first4, 4);
      std::memcpy(route + k + 4, &last4, 4);
    }
  }
  return k;
}

// The first 8 * (c / 8) channels of backward_cell<float>; returns how many it did.
inline int64_t backward_cell_avx2(const float* grad_out, const uint8_t* route, float* grad_in, int64_t c,
                                  uint8_t pos, float scale) {
  const __m256 vscale = _mm256_set1_ps(scale);
  const __m256i vpos = _mm256_set1_epi32(pos);
  int64_t k = 0;
  for (; k + 8 <= c; k += 8) {
    int64_t bytes;
    std::memcpy(&bytes, route + k, 8);
    const __m256i r = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(bytes));
    const __m256 here = _mm256_castsi256_ps(_mm256_cmpeq_epi32(r, vpos));
    _mm256_storeu_ps(grad_in + k, _mm256_and_ps(here, _mm256_mul_ps(_mm256_loadu_ps(grad_out + k), vscale)));
  }
  return k;
}
#endif

// One window position across the c channels: w0, w1 (top row), w2, w3 (bottom row) -> out, route.
template <typename T, bool kRoutes>
inline void forward_cell(const T* __restrict__ w0, const T* __restrict__ w1, const T* __restrict__ w2,
                         const T* __restrict__ w3, T* __restrict__ out, uint8_t* __restrict__ route, int64_t c,
                         uint64_t first_index, uint32_t keep_threshold, float scale, uint64_t seed) {
  int64_t k = 0;
#ifdef POOL_AVX2
  if constexpr (std::is_same_v<T, float>)
    k = forward_cell_avx2<kRoutes>(w0, w1, w2, w3, out, route, c, first_index, keep_threshold, scale, seed);
#endif
  for (; k < c; ++k) {
    float best = to_float(w0[k]);
    uint32_t where = 0;
    const float v1 = to_float(w1[k]), v2 = to_float(w2[k]), v3 = to_float(w3[k]);
    bool wins = v1 > best || v1 != v1;  // strictly greater: the first maximum stays; NaN wins, as in torch
    best = wins ? v1 : best;
    where = wins ? 1u : where;
    wins = v2 > best || v2 != v2;
    best = wins ? v2 : best;
    where = wins ? 2u : where;
    wins = v3 > best || v3 != v3;
    best = wins ? v3 : best;
    where = wins ? 3u : where;
    const bool kept = random24(seed, first_index + uint64_t(k)) >= keep_threshold;
    const bool passes = kept && (best > 0.0f || best != best);
    out[k] = from_float(passes ? best * scale : 0.0f, out);
    if (kRoutes) route[k] = uint8_t(passes ? where : uint32_t(BLOCKED));
  }
}

template <typename T, bool kRoutes>
void forward(const T* x, T* out, uint8_t* route, int64_t n, int64_t h, int64_t w, int64_t c,
             uint32_t keep_threshold, float scale, uint64_t seed, int threads) {
  const int64_t oh = h / 2, ow = w / 2;
  parallel_for(n * oh, threads, [=](int64_t first, int64_t last) {
    for (int64_t row = first; row < last; ++row) {  // row = image * oh + output row
      const int64_t image = row / oh, i = row % oh;
      const T* top = x + ((image * h + 2 * i) * w) * c;
      const T* bottom = top + w * c;
      for (int64_t j = 0; j < ow; ++j) {
        const int64_t o = (row * ow + j) * c;
        forward_cell<T, kRoutes>(top + 2 * j * c, top + (2 * j + 1) * c, bottom + 2 * j * c,
                                 bottom + (2 * j + 1) * c, out + o, kRoutes ? route + o : nullptr, c, uint64_t(o),
                                 keep_threshold, scale, seed);
      }
    }
  });
}

// One input position across the c channels: the gradient where the route says `pos`, else 0.
template <typename T>
inline void backward_cell(const T* __restrict__ grad_out, const uint8_t* __restrict__ route, T* __restrict__ grad_in,
                          int64_t c, uint8_t pos, float scale) {
  int64_t k = 0;
#ifdef POOL_AVX2
  if constexpr (std::is_same_v<T, float>) k = backward_cell_avx2(grad_out, route, grad_in, c, pos, scale);
#endif
  for (; k < c; ++k) {
    grad_in[k] = from_float(route[k] == pos ? to_float(grad_out[k]) * scale : 0.0f, grad_in);
  }
}

template <typename T>
void backward(const T* grad_out, const uint8_t* route, T* grad_in, int64_t n, int64_t h, int64_t w, int64_t c,
              float scale, int threads) {
  const int64_t oh = h / 2, ow = w / 2;
  parallel_for(n * h, threads, [=](int64_t first, int64_t last) {
    for (int64_t row = first; row < last; ++row) {  // row = image * h + input row
      const int64_t image = row / h, r = row % h, i = r / 2;
      T* dst = grad_in + row * w * c;
      int64_t written = 0;
      if (i < oh) {  // else the odd last row, outside every window
        const uint8_t top_or_bottom = uint8_t(2 * (r % 2));  // positions 0, 1 in the top row; 2, 3 in the bottom
        for (int64_t j = 0; j < ow; ++j) {
          const int64_t o = ((image * oh + i) * ow + j) * c;
          backward_cell(grad_out + o, route + o, dst + 2 * j * c, c, top_or_bottom, scale);
          backward_cell(grad_out + o, route + o, dst + (2 * j + 1) * c, c, uint8_t(top_or_bottom + 1), scale);
        }
        written = 2 * ow * c;
      }
      for (int64_t k = written; k < w * c; ++k) dst[k] = from_float(0.0f, dst);  // odd last column or row
    }
  });
}

}  // namespace

extern "C" {

// dtype: 0 = float32, 1 = bfloat16 (raw 16-bit words). `route` may be null: no gradient wanted.
void pool_relu_dropout_forward(int dtype, const void* x, void* out, uint8_t* route, int64_t n, int64_t h,
                               int64_t w, int64_t c, uint32_t keep_threshold, float scale, uint64_t seed,
                               int threads) {
  auto run = [&](auto* typed_out) {
    using T = std::remove_pointer_t<decltype(typed_out)>;
    const T* typed_x = static_cast<const T*>(x);
    if (route) {
      forward<T, true>(typed_x, typed_out, route, n, h, w, c, keep_threshold, scale, seed, threads);
    } else {
      forward<T, false>(typed_x, typed_out, route, n, h, w, c, keep_threshold, scale, seed, threads);
    }
  };
  if (dtype == 0) {
    run(static_cast<float*>(out));
  } else {
    run(static_cast<uint16_t*>(out));
  }
}

void pool_relu_dropout_backward(int dtype, const void* grad_out, const uint8_t* route, void* grad_in, int64_t n,
                                int64_t h, int64_t w, int64_t c, float scale, int threads) {
  if (dtype == 0) {
    backward(static_cast<const float*>(grad_out), route, static_cast<float*>(grad_in), n, h, w, c, scale,
             threads);
  } else {
    backward(static_cast<const uint16_t*>(grad_out), route, static_cast<uint16_t*>(grad_in), n, h, w, c, scale,
             threads);
  }
}

}  // extern "C"
