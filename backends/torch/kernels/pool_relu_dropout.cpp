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

// One window position across the c channels: w0, w1 (top row), w2, w3 (bottom row) -> out, route.
template <typename T, bool kRoutes>
inline void forward_cell(const T* __restrict__ w0, const T* __restrict__ w1, const T* __restrict__ w2,
                         const T* __restrict__ w3, T* __restrict__ out, uint8_t* __restrict__ route, int64_t c,
                         uint64_t first_index, uint32_t keep_threshold, float scale, uint64_t seed) {
  for (int64_t k = 0; k < c; ++k) {
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
  for (int64_t k = 0; k < c; ++k) {
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
