// Weight and bias gradients of 3x3, stride-1, 'same' convolutions for channels_last (NHWC) float32 tensors on
// the CPU, where oneDNN's AVX2 kernels are slow: the CNN's first conv (1 to 4 input channels, RGB -> 64) and
// convs with many input channels (conv1, 64 -> 64). Loaded by backends/torch/conv.py through ctypes (plain C
// entry points, no torch headers); that file says why they exist and how they are checked.
//
// Few input channels: oneDNN blocks the input channels by the vector width, so with 3 of them most lanes of
// every FMA idle. Here the vectors run along the output channels: each FMA multiplies one input value,
// broadcast, by 8 (AVX2) or 16 (AVX-512) output channels' gradients, C input channels x 4 vectors of output
// channels in registers over an image row. Input zero-padded by one pixel, xp[N][H+2][W+2][C]; dy[N][H][W][Cout];
// gw[kh][kw][c][Cout] (Keras' HWIO). Cout must be a multiple of 32.
//
// Round-off: a weight gradient is a sum over pixels, row by row (a row's sum in registers, then added to the
// thread's partial sum), and the threads' partial sums are added in thread order: deterministic for a thread
// count.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include <immintrin.h>

namespace {

#if defined(__AVX512F__)
constexpr int VW = 16;  // floats per vector
typedef __m512 vec;
inline vec load(const float* p) { return _mm512_loadu_ps(p); }
inline void store(float* p, vec v) { _mm512_storeu_ps(p, v); }
inline vec splat(float x) { return _mm512_set1_ps(x); }
inline vec zero() { return _mm512_setzero_ps(); }
inline vec fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
inline vec add(vec a, vec b) { return _mm512_add_ps(a, b); }
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int VW = 8;
typedef __m256 vec;
inline vec load(const float* p) { return _mm256_loadu_ps(p); }
inline void store(float* p, vec v) { _mm256_storeu_ps(p, v); }
inline vec splat(float x) { return _mm256_set1_ps(x); }
inline vec zero() { return _mm256_setzero_ps(); }
inline vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
inline vec add(vec a, vec b) { return _mm256_add_ps(a, b); }
#else
#define CONV_UNSUPPORTED 1  // no AVX2 + FMA: the entry points refuse, and conv.py uses torch's convolution
constexpr int VW = 8;
struct vec {
  float v[8];
};
inline vec load(const float* p) { vec r; std::memcpy(r.v, p, sizeof r.v); return r; }
inline void store(float* p, vec v) { std::memcpy(p, v.v, sizeof v.v); }
inline vec splat(float x) { vec r; for (float& e : r.v) e = x; return r; }
inline vec zero() { return splat(0.0f); }
inline vec fma(vec a, vec b, vec c) { for (int i = 0; i < 8; ++i) c.v[i] += a.v[i] * b.v[i]; return c; }
inline vec add(vec a, vec b) { for (int i = 0; i < 8; ++i) a.v[i] += b.v[i]; return a; }
#endif

// As in pool_relu_dropout.cpp: with -fopenmp this is torch's own OpenMP pool; else plain threads.
template <typename Body>
void parallel_for(int64_t n, int threads, Body body) {
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, n)));
  const int64_t chunk = (n + threads - 1) / threads;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static, 1)
  for (int t = 0; t < threads; ++t) {
    const int64_t first = t * chunk, last = std::min(n, first + chunk);
    if (first < last) body(t, first, last);
  }
#else
  std::vector<std::thread> workers;
  for (int t = 1; t < threads; ++t) {
    const int64_t first = t * chunk, last = std::min(n, first + chunk);
    if (first < last) workers.emplace_back(body, t, first, last);
  }
  body(0, int64_t(0), std::min(n, chunk));
  for (auto& w : workers) w.join();
#endif
}

constexpr int CB = 32;  // Cout must be a multiple of this

// Weight gradient blocks: C input channels x WNV vectors of output channels per tap (12 accumulators with AVX2).
constexpr int WNV = 4;
constexpr int WCB = WNV * VW;

// Adds one row's sums for tap (kh, kw) and channels [cb, cb + NVB * VW) into gw (the thread's partial sum).
template <int C, int NVB>
inline void weight_row(const float* xr, const float* dyrow, int64_t w, int64_t cout, int64_t cb, int kw,
                       float* gw_tap) {
  vec acc[C][NVB];
  for (int c = 0; c < C; ++c)
    for (int v = 0; v < NVB; ++v) acc[c][v] = zero();
  for (int64_t x = 0; x < w; ++x) {
    vec dv[NVB];
#pragma GCC unroll 8
    for (int v = 0; v < NVB; ++v) dv[v] = load(dyrow + x * cout + cb + v * VW);
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
      const vec xs = splat(xr[(x + kw) * C + c]);
#pragma GCC unroll 8
      for (int v = 0; v < NVB; ++v) acc[c][v] = fma(xs, dv[v], acc[c][v]);
    }
  }
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c)
#pragma GCC unroll 8
    for (int v = 0; v < NVB; ++v) {
      float* g = gw_tap + c * cout + cb + v * VW;
      store(g, add(load(g), acc[c][v]));
    }
}

template <int C>
void weight_grad(const float* xp, const float* dy, float* gw, float* gb, int64_t n, int64_t h, int64_t w,
                 int64_t cout, int threads) {
  const int64_t row_stride = (w + 2) * C, image_stride = (h + 2) * row_stride;
  const int64_t wsize = 9 * C * cout;
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, n * h)));
  std::vector<float> partial(size_t(threads) * (wsize + cout), 0.0f);
  parallel_for(n * h, threads, [&](int t, int64_t first, int64_t last) {
    float* pw = partial.data() + t * (wsize + cout);
    float* pb = pw + wsize;
    for (int64_t r = first; r < last; ++r) {
      const int64_t i = r / h, hh = r % h;
      const float* xrow = xp + i * image_stride + hh * row_stride;
      const float* dyrow = dy + r * w * cout;
      for (int kh = 0; kh < 3; ++kh)
        for (int kw = 0; kw < 3; ++kw) {
          float* gw_tap = pw + (kh * 3 + kw) * C * cout;
          int64_t cb = 0;
          for (; cb + WCB <= cout; cb += WCB)
            weight_row<C, WNV>(xrow + kh * row_stride, dyrow, w, cout, cb, kw, gw_tap);
          for (; cb < cout; cb += VW) weight_row<C, 1>(xrow + kh * row_stride, dyrow, w, cout, cb, kw, gw_tap);
        }
      if (gb) {
        for (int64_t cb = 0; cb < cout; cb += VW) {
          vec s = zero();
          for (int64_t x = 0; x < w; ++x) s = add(s, load(dyrow + x * cout + cb));
          store(pb + cb, add(load(pb + cb), s));
        }
      }
    }
  });
  for (int64_t k = 0; k < wsize; ++k) {
    float s = 0.0f;
    for (int t = 0; t < threads; ++t) s += partial[t * (wsize + cout) + k];
    gw[k] = s;
  }
  if (gb)
    for (int64_t k = 0; k < cout; ++k) {
      float s = 0.0f;
      for (int t = 0; t < threads; ++t) s += partial[t * (wsize + cout) + wsize + k];
      gb[k] = s;
    }
}

// The weight gradient of a 3x3 'same' conv with many input channels (C a multiple of 2 * VW: the CNN's conv1,
// 64 -> 64), unpadded NHWC x[N][H][W][C] and dy[N][H][W][O]: gw[kh][kw][o][c] = sum over pixels of
// dy[p][o] * x[p + (kh-1, kw-1)][c] (taps that fall off the image contribute nothing, as zero padding).
// oneDNN's AVX2 backward-weights kernel ran at ~40 % of the sgemm peak here; this is a GEMM over the pixels with
// OB output channels (broadcast) x 2 vectors of input channels in registers: 12 AVX2 accumulators.
constexpr int GOB = VW == 16 ? 12 : 6;  // AVX-512: 24 of 32 zmm

template <int OB>
inline void general_weight_pass(const float* xr, const float* dyr, int64_t first, int64_t last, int64_t c,
                                int64_t o, int64_t ob, int64_t cb, float* g /* gw_tap + ob * c + cb */) {
  vec acc[OB][2];
#pragma GCC unroll 12
  for (int i = 0; i < OB; ++i) acc[i][0] = acc[i][1] = zero();
  for (int64_t x = first; x < last; ++x) {
    const vec a = load(xr + x * c + cb), b = load(xr + x * c + cb + VW);
    const float* d = dyr + x * o + ob;
#pragma GCC unroll 12
    for (int i = 0; i < OB; ++i) {
      const vec s = splat(d[i]);
      acc[i][0] = fma(s, a, acc[i][0]);
      acc[i][1] = fma(s, b, acc[i][1]);
    }
  }
#pragma GCC unroll 12
  for (int i = 0; i < OB; ++i) {
    store(g + i * c, add(load(g + i * c), acc[i][0]));
    store(g + i * c + VW, add(load(g + i * c + VW), acc[i][1]));
  }
}

template <int OB>
inline void general_weight_tap(const float* xr, const float* dyr, int64_t first, int64_t last, int64_t c,
                               int64_t o, int64_t ob, float* gw_tap) {
  for (int64_t cb = 0; cb < c; cb += 2 * VW)
    general_weight_pass<OB>(xr, dyr, first, last, c, o, ob, cb, gw_tap + ob * c + cb);
}

void general_weight_grad(const float* x, const float* dy, float* gw, float* gb, int64_t n, int64_t h, int64_t w,
                         int64_t c, int64_t o, int threads) {
  const int64_t wsize = 9 * o * c;
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, n * h)));
  std::vector<float> partial(size_t(threads) * (wsize + o), 0.0f);
  parallel_for(n * h, threads, [&](int t, int64_t first_row, int64_t last_row) {
    float* pw = partial.data() + t * (wsize + o);
    float* pb = pw + wsize;
    for (int64_t r = first_row; r < last_row; ++r) {
      const int64_t i = r / h, hh = r % h;
      const float* dyr = dy + r * w * o;
      for (int kh = 0; kh < 3; ++kh) {
        const int64_t src = hh + kh - 1;
        if (src < 0 || src >= h) continue;
        for (int kw = 0; kw < 3; ++kw) {
          // Output pixels x whose input x + kw - 1 lies in the row; xr is shifted so that xr[x * c] is it.
          const int64_t first = kw == 0 ? 1 : 0, last = kw == 2 ? w - 1 : w;
          const float* xr = x + ((i * h + src) * w + (kw - 1)) * c;
          float* gw_tap = pw + (kh * 3 + kw) * o * c;
          int64_t ob = 0;
          for (; ob + GOB <= o; ob += GOB) general_weight_tap<GOB>(xr, dyr, first, last, c, o, ob, gw_tap);
          for (; ob + 4 <= o; ob += 4) general_weight_tap<4>(xr, dyr, first, last, c, o, ob, gw_tap);
          for (; ob < o; ++ob) general_weight_tap<1>(xr, dyr, first, last, c, o, ob, gw_tap);
        }
      }
      if (gb) {
        int64_t k = 0;
        for (; k + VW <= o; k += VW) {
          vec s = zero();
          for (int64_t px = 0; px < w; ++px) s = add(s, load(dyr + px * o + k));
          store(pb + k, add(load(pb + k), s));
        }
        for (; k < o; ++k)
          for (int64_t px = 0; px < w; ++px) pb[k] += dyr[px * o + k];
      }
    }
  });
  for (int64_t k = 0; k < wsize; ++k) {
    float s = 0.0f;
    for (int t = 0; t < threads; ++t) s += partial[t * (wsize + o) + k];
    gw[k] = s;
  }
  if (gb)
    for (int64_t k = 0; k < o; ++k) {
      float s = 0.0f;
      for (int t = 0; t < threads; ++t) s += partial[t * (wsize + o) + wsize + k];
      gb[k] = s;
    }
}

}  // namespace

extern "C" {

// Which vector width this build uses (8: AVX2, 16: AVX-512): fused-kernel tests and result.json say it.
int conv3x3_small_cin_vector_width() {
#ifdef CONV_UNSUPPORTED
  return 0;
#else
  return VW;
#endif
}

// 0 on success; 1 where the shape is not supported (C outside 1..4, Cout not a multiple of 32).
// gw: the weight gradient in the packed layout [kh][kw][c][Cout]; gb (may be null): the bias gradient.
int conv3x3_small_cin_weight_grad(const float* xp, const float* dy, float* gw, float* gb, int64_t n, int64_t h,
                                  int64_t w, int64_t c, int64_t cout, int threads) {
#ifdef CONV_UNSUPPORTED
  return 1;
#endif
  if (cout % CB != 0) return 1;
  switch (c) {
    case 1: weight_grad<1>(xp, dy, gw, gb, n, h, w, cout, threads); return 0;
    case 2: weight_grad<2>(xp, dy, gw, gb, n, h, w, cout, threads); return 0;
    case 3: weight_grad<3>(xp, dy, gw, gb, n, h, w, cout, threads); return 0;
    case 4: weight_grad<4>(xp, dy, gw, gb, n, h, w, cout, threads); return 0;
    default: return 1;
  }
}

// gw: [kh][kw][o][c]; gb (may be null): the bias gradient. 1 where C is not a multiple of 2 * vector width.
int conv3x3_weight_grad(const float* x, const float* dy, float* gw, float* gb, int64_t n, int64_t h, int64_t w,
                        int64_t c, int64_t o, int threads) {
#ifdef CONV_UNSUPPORTED
  return 1;
#endif
  if (c % (2 * VW) != 0 || h < 1 || w < 1) return 1;
  general_weight_grad(x, dy, gw, gb, n, h, w, c, o, threads);
  return 0;
}

}  // extern "C"
