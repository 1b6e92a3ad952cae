// AdderNet l1 "convolution" kernels for CPU: forward and HardTanh input gradient.
//
// Chen et al., "AdderNet: Do We Really Need Multiplications in Deep Learning?" (CVPR 2020).
//
//   forward     Y[n,o,p]  = -sum_k |Xcol[n,k,p] - W[o,k]|
//   input grad  dXcol[k,p] = sum_o clamp(W[o,k] - Xcol[k,p], -1, 1) * G[n,o,p], folded onto X
//
// where k runs over (c, u, v), p over output positions, and Xcol is the im2col of the
// zero-padded input (padded positions count as X = 0, as in the official unfold code).
// Both are GEMM-shaped, so they are computed like a GEMM: Xcol is packed a chunk of output
// positions at a time into panels of NR positions (k-major, NR contiguous), and a register
// tile of MR x NR accumulators runs over the whole reduction. The tiles are written with GCC
// vector extensions and compiled three times (baseline x86-64 SSE2, AVX2+FMA, AVX-512F);
// the widest one the CPU supports is picked at run time, so the binary never needs
// -march=native. The largest temporary is one chunk of packed columns per thread.
// The weight gradient is a convolution's weight gradient and stays in PyTorch.

#ifndef NASIR_ADDER_ISA_PART  // the shared part; the per-ISA part is after #else

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

#define NASIR_INLINE inline __attribute__((always_inline))

template <typename T, int Bytes>
struct Vec;
template <>
struct Vec<float, 16> {
  typedef float V __attribute__((vector_size(16)));
  typedef int32_t I __attribute__((vector_size(16)));
};
template <>
struct Vec<float, 32> {
  typedef float V __attribute__((vector_size(32)));
  typedef int32_t I __attribute__((vector_size(32)));
};
template <>
struct Vec<float, 64> {
  typedef float V __attribute__((vector_size(64)));
  typedef int32_t I __attribute__((vector_size(64)));
};
template <>
struct Vec<double, 16> {
  typedef double V __attribute__((vector_size(16)));
  typedef int64_t I __attribute__((vector_size(16)));
};
template <>
struct Vec<double, 32> {
  typedef double V __attribute__((vector_size(32)));
  typedef int64_t I __attribute__((vector_size(32)));
};
template <>
struct Vec<double, 64> {
  typedef double V __attribute__((vector_size(64)));
  typedef int64_t I __attribute__((vector_size(64)));
};

// Shape of one adder layer call; positions are p = i * WO + j.
struct Geom {
  int64_t N, C, H, W, O, KH, KW, S, P, HO, WO;
  int64_t KK() const { return KH * KW; }
  int64_t L() const { return HO * WO; }
};

// A run of consecutive positions in one output row, as seen from one panel: panel slots
// [t0, t1) read input row ih0 + u and columns iw0 + v + (t - t0) * S for kernel offset (u, v).
// Copies and folds work on whole runs, so no slot needs its own bounds check.
struct Run {
  int64_t t0, t1, ih0, iw0;
};

// The runs of each panel of nr positions in [p0, p0 + np): runs[begin[q] .. begin[q + 1]).
void panel_runs(const Geom& g, int64_t p0, int64_t np, int64_t nr, std::vector<Run>& runs,
                std::vector<int64_t>& begin) {
  runs.clear();
  begin.clear();
  for (int64_t q0 = 0; q0 < np; q0 += nr) {
    begin.push_back(static_cast<int64_t>(runs.size()));
    const int64_t end = p0 + std::min(np, q0 + nr);
    for (int64_t p = p0 + q0; p < end;) {
      const int64_t i = p / g.WO, j = p % g.WO;
      const int64_t len = std::min(end - p, g.WO - j);
      runs.push_back({p - p0 - q0, p - p0 - q0 + len, i * g.S - g.P, j * g.S - g.P});
      p += len;
    }
  }
  begin.push_back(static_cast<int64_t>(runs.size()));
}

// Slots [a, b) of a run starting at input column `base` that land inside 0 <= iw < W.
NASIR_INLINE void inside_slots(int64_t base, int64_t n, int64_t S, int64_t W, int64_t& a,
                               int64_t& b) {
  a = base >= 0 ? 0 : std::min(n, (-base + S - 1) / S);
  b = base > W - 1 ? 0 : std::min(n, (W - 1 - base) / S + 1);
  if (b < a) b = a;
}

// im2col of channels [c0, c1) of one sample for the positions of the given runs, as panels
// of nr slots: buf[q][k][t] with k = (c - c0, u, v), then rows_pad - rows zero rows.
// Slots outside the image (padding) and past the last position are 0.
template <typename T>
void pack_columns(const T* x, const Geom& g, int64_t c0, int64_t c1, int64_t nr,
                  int64_t rows_pad, const std::vector<Run>& runs,
                  const std::vector<int64_t>& begin, T* buf) {
  const int64_t panels = static_cast<int64_t>(begin.size()) - 1;
  const int64_t hw = g.H * g.W;
  for (int64_t q = 0; q < panels; ++q) {
    T* dst = buf + q * rows_pad * nr;
    std::memset(dst, 0, sizeof(T) * rows_pad * nr);
    for (int64_t c = c0; c < c1; ++c) {
      const T* xc = x + c * hw;
      for (int64_t u = 0; u < g.KH; ++u) {
        for (int64_t v = 0; v < g.KW; ++v, dst += nr) {
          for (int64_t r = begin[q]; r < begin[q + 1]; ++r) {
            const Run& run = runs[r];
            const int64_t ih = run.ih0 + u;
            if (static_cast<uint64_t>(ih) >= static_cast<uint64_t>(g.H)) continue;
            const int64_t base = run.iw0 + v;
            int64_t a, b;
            inside_slots(base, run.t1 - run.t0, g.S, g.W, a, b);
            const T* src = xc + ih * g.W + base;
            T* out = dst + run.t0;
            if (g.S == 1) {
              if (b > a) std::memcpy(out + a, src + a, sizeof(T) * (b - a));
            } else {
              for (int64_t m = a; m < b; ++m) out[m] = src[m * g.S];
            }
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Arguments of the per-ISA chunk drivers: everything between packing and the output.

template <typename T>
struct ForwardArgs {
  const T* cols;   // packed panels, K x NR each
  const T* wpack;  // (ceil(O / MR), K, MR)
  int64_t K, O, L, p0, np;
  T* y;  // this sample's output, O x L
};

template <typename T>
struct InputGradArgs {
  const T* cols;   // packed panels of this channel group, KcPad x NR each
  const T* gpack;  // packed grad_out panels, O x NR each
  const T* wpack;  // (KcPad / KR, O, KR)
  int64_t Kc, KcPad, O, np, W, H, KH, KW;
  int64_t S;
  T clip;  // HardTanh bound, 1
  const Run* runs;
  const int64_t* run_begin;  // runs of panel q: runs[run_begin[q] .. run_begin[q + 1])
  T* dx;  // this sample's grad for channel c0
};

// ---------------------------------------------------------------------------------------
// The register tiles and chunk drivers (the #else part of this file) are compiled once per
// instruction set: this file includes itself inside a namespace under `#pragma GCC target`,
// so every inlined helper shares its caller's target (GCC refuses to inline across targets).
// Tile sizes keep accumulators, inputs and constants within the register file (16 vector
// registers below AVX-512, 32 with it). kNV vectors of positions per tile for every ISA.

#define NASIR_ADDER_ISA_PART 1

namespace base {  // x86-64 baseline (SSE2), or whatever the target's default is
constexpr int kBytes = 16, kMR = 4, kKR = 2, kNV = 2;
#include __FILE__
}  // namespace base

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)  // clang: baseline only
#define NASIR_HAVE_X86 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
constexpr int kBytes = 32, kMR = 4, kKR = 2, kNV = 2;
#include __FILE__
}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f")
namespace avx512 {
constexpr int kBytes = 64, kMR = 8, kKR = 4, kNV = 2;
#include __FILE__
}  // namespace avx512
#pragma GCC pop_options
#endif

enum Isa { kBase = 0, kAvx2 = 1, kAvx512 = 2 };

int best_isa() {
#ifdef NASIR_HAVE_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return kAvx2;
#endif
  return kBase;
}

int resolve_isa(int64_t requested) {
  const int best = best_isa();
  if (requested < 0) return best;
  TORCH_CHECK(requested <= best, "adder kernel ISA level ", requested,
              " is not supported by this CPU (best is ", best, ")");
  return static_cast<int>(requested);
}

// Tile shape per ISA: {MR, KR, NR}; NR is in elements of T.
struct TileShape {
  int64_t mr, kr, nr;
};

template <typename T>
TileShape tile_shape(int isa) {
  constexpr int64_t size = sizeof(T);
#ifdef NASIR_HAVE_X86
  if (isa == kAvx512) return {avx512::kMR, avx512::kKR, avx512::kNV * avx512::kBytes / size};
  if (isa == kAvx2) return {avx2::kMR, avx2::kKR, avx2::kNV * avx2::kBytes / size};
#endif
  return {base::kMR, base::kKR, base::kNV * base::kBytes / size};
}

template <typename T>
struct Kernels {
  void (*forward)(const ForwardArgs<T>&);
  void (*input_grad)(const InputGradArgs<T>&);
};

template <typename T>
Kernels<T> kernels(int isa);

template <>
Kernels<float> kernels<float>(int isa) {
#ifdef NASIR_HAVE_X86
  if (isa == kAvx512) return {avx512::forward_f32, avx512::input_grad_f32};
  if (isa == kAvx2) return {avx2::forward_f32, avx2::input_grad_f32};
#endif
  return {base::forward_f32, base::input_grad_f32};
}

template <>
Kernels<double> kernels<double>(int isa) {
#ifdef NASIR_HAVE_X86
  if (isa == kAvx512) return {avx512::forward_f64, avx512::input_grad_f64};
  if (isa == kAvx2) return {avx2::forward_f64, avx2::input_grad_f64};
#endif
  return {base::forward_f64, base::input_grad_f64};
}

constexpr int64_t kChunkBytes = 256 * 1024;  // packed columns per chunk: about half an L2

int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

// Positions per chunk: a multiple of nr whose packed rows (rows x positions) fit kChunkBytes.
int64_t chunk_positions(int64_t rows, int64_t L, int64_t nr, int64_t itemsize) {
  const int64_t fit = kChunkBytes / std::max<int64_t>(1, rows * itemsize) / nr * nr;
  return std::min(round_up(L, nr), std::max(nr, fit));
}

Geom make_geom(const torch::Tensor& x, const torch::Tensor& w, int64_t stride, int64_t padding) {
  Geom g;
  g.N = x.size(0), g.C = x.size(1), g.H = x.size(2), g.W = x.size(3);
  g.O = w.size(0), g.KH = w.size(2), g.KW = w.size(3), g.S = stride, g.P = padding;
  g.HO = (g.H - g.KH + 2 * padding) / stride + 1;
  g.WO = (g.W - g.KW + 2 * padding) / stride + 1;
  return g;
}

void check_operands(const torch::Tensor& x, const torch::Tensor& w, int64_t stride,
                    int64_t padding) {
  TORCH_CHECK(x.device().is_cpu() && w.device().is_cpu(), "adder kernel: CPU tensors only");
  TORCH_CHECK(x.dim() == 4 && w.dim() == 4, "adder kernel: 4-d input and weight");
  TORCH_CHECK(x.scalar_type() == w.scalar_type(), "adder kernel: input and weight dtypes differ");
  TORCH_CHECK(x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kDouble,
              "adder kernel: float32 or float64 only");
  TORCH_CHECK(x.size(1) == w.size(1), "adder kernel: channel mismatch");
  TORCH_CHECK(stride >= 1 && padding >= 0, "adder kernel: need stride >= 1, padding >= 0");
  TORCH_CHECK(x.size(2) + 2 * padding >= w.size(2) && x.size(3) + 2 * padding >= w.size(3),
              "adder kernel: kernel does not fit the input");
}

template <typename T>
void forward_impl(const torch::Tensor& x, const torch::Tensor& w, const Geom& g, int isa,
                  torch::Tensor& y) {
  const TileShape ts = tile_shape<T>(isa);
  const Kernels<T> kern = kernels<T>(isa);
  const int64_t K = g.C * g.KK(), L = g.L(), O = g.O;
  // Weights as (ceil(O / MR), K, MR), zero rows past O.
  const int64_t oblocks = (O + ts.mr - 1) / ts.mr;
  std::vector<T> wpack(oblocks * K * ts.mr, T(0));
  const T* wd = w.data_ptr<T>();
  for (int64_t o = 0; o < O; ++o)
    for (int64_t k = 0; k < K; ++k)
      wpack[((o / ts.mr) * K + k) * ts.mr + o % ts.mr] = wd[o * K + k];
  const int64_t pc = chunk_positions(K, L, ts.nr, sizeof(T));
  const int64_t chunks = (L + pc - 1) / pc;
  const T* xd = x.data_ptr<T>();
  T* yd = y.data_ptr<T>();
  at::parallel_for(0, g.N * chunks, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> cols(K * pc);
    std::vector<Run> runs;
    std::vector<int64_t> run_begin;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / chunks, p0 = (item % chunks) * pc;
      const int64_t np = std::min(pc, L - p0);
      panel_runs(g, p0, np, ts.nr, runs, run_begin);
      const T* xn = xd + n * g.C * g.H * g.W;
      pack_columns(xn, g, 0, g.C, ts.nr, K, runs, run_begin, cols.data());
      ForwardArgs<T> a{cols.data(), wpack.data(), K, O, L, p0, np, yd + n * O * L};
      kern.forward(a);
    }
  });
}

template <typename T>
void input_grad_impl(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& go,
                     const Geom& g, int isa, torch::Tensor& dx) {
  const TileShape ts = tile_shape<T>(isa);
  const Kernels<T> kern = kernels<T>(isa);
  const int64_t K = g.C * g.KK(), L = g.L(), O = g.O, kk = g.KK();
  // Channel groups give batch-1 calls parallel work; groups own disjoint slices of dx.
  const int64_t groups = std::min<int64_t>(
      g.C, std::max<int64_t>(1, (at::get_num_threads() + g.N - 1) / g.N));
  const int64_t per_group = (g.C + groups - 1) / groups;
  const int64_t kc_max = round_up(per_group * kk, ts.kr);
  const int64_t pc = chunk_positions(kc_max + O, L, ts.nr, sizeof(T));
  const T* xd = x.data_ptr<T>();
  const T* wd = w.data_ptr<T>();
  const T* gd = go.data_ptr<T>();
  T* dxd = dx.data_ptr<T>();
  // Weights of each group as (KcPad / KR, O, KR), zero rows past Kc; packed once per call.
  std::vector<T> wpack(groups * kc_max * O, T(0));
  for (int64_t grp = 0; grp < groups; ++grp) {
    const int64_t c0 = grp * per_group, c1 = std::min(g.C, c0 + per_group);
    T* wg = wpack.data() + grp * kc_max * O;
    for (int64_t kb = 0; kb < (c1 - c0) * kk; kb += ts.kr)
      for (int64_t o = 0; o < O; ++o)
        for (int64_t r = 0; r < ts.kr && kb + r < (c1 - c0) * kk; ++r)
          wg[(kb * O) + o * ts.kr + r] = wd[o * K + c0 * kk + kb + r];
  }
  at::parallel_for(0, g.N * groups, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> cols(kc_max * pc), gpack(O * pc);
    std::vector<Run> runs;
    std::vector<int64_t> run_begin;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / groups, grp = item % groups, c0 = grp * per_group;
      const int64_t c1 = std::min(g.C, c0 + per_group);
      if (c0 >= c1) continue;
      const int64_t Kc = (c1 - c0) * kk, KcPad = round_up(Kc, ts.kr);
      const T* wg = wpack.data() + grp * kc_max * O;
      const T* xn = xd + n * g.C * g.H * g.W;
      const T* gn = gd + n * O * L;
      for (int64_t p0 = 0; p0 < L; p0 += pc) {
        const int64_t np = std::min(pc, L - p0), panels = (np + ts.nr - 1) / ts.nr;
        panel_runs(g, p0, np, ts.nr, runs, run_begin);
        // Columns as panels of KcPad rows (rows past Kc are zero) ...
        pack_columns(xn, g, c0, c1, ts.nr, KcPad, runs, run_begin, cols.data());
        // ... and grad_out as panels of O rows, zero past np.
        for (int64_t q = 0; q < panels; ++q) {
          T* gq = gpack.data() + q * O * ts.nr;
          const int64_t nq = std::min(ts.nr, np - q * ts.nr);
          for (int64_t o = 0; o < O; ++o) {
            const T* src = gn + o * L + p0 + q * ts.nr;
            for (int64_t t = 0; t < ts.nr; ++t) gq[o * ts.nr + t] = t < nq ? src[t] : T(0);
          }
        }
        InputGradArgs<T> a{cols.data(), gpack.data(), wg, Kc, KcPad, O, np,
                           g.W, g.H, g.KH, g.KW, g.S, T(1), runs.data(), run_begin.data(),
                           dxd + (n * g.C + c0) * g.H * g.W};
        kern.input_grad(a);
      }
    }
  });
}

torch::Tensor adder_forward(torch::Tensor x, torch::Tensor w, int64_t stride, int64_t padding,
                            int64_t isa) {
  check_operands(x, w, stride, padding);
  x = x.contiguous();
  w = w.contiguous();
  const Geom g = make_geom(x, w, stride, padding);
  const int level = resolve_isa(isa);
  auto y = torch::empty({g.N, g.O, g.HO, g.WO}, x.options());
  if (g.N == 0) return y;
  if (x.scalar_type() == torch::kFloat)
    forward_impl<float>(x, w, g, level, y);
  else
    forward_impl<double>(x, w, g, level, y);
  return y;
}

torch::Tensor adder_input_grad(torch::Tensor x, torch::Tensor w, torch::Tensor grad_out,
                               int64_t stride, int64_t padding, int64_t isa) {
  check_operands(x, w, stride, padding);
  x = x.contiguous();
  w = w.contiguous();
  grad_out = grad_out.contiguous();
  const Geom g = make_geom(x, w, stride, padding);
  TORCH_CHECK(grad_out.scalar_type() == x.scalar_type(), "adder kernel: grad_out dtype");
  TORCH_CHECK(grad_out.dim() == 4 && grad_out.size(0) == g.N && grad_out.size(1) == g.O &&
                  grad_out.size(2) == g.HO && grad_out.size(3) == g.WO,
              "adder kernel: grad_out shape");
  const int level = resolve_isa(isa);
  auto dx = torch::zeros_like(x);
  if (g.N == 0) return dx;
  if (x.scalar_type() == torch::kFloat)
    input_grad_impl<float>(x, w, grad_out, g, level, dx);
  else
    input_grad_impl<double>(x, w, grad_out, g, level, dx);
  return dx;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "nasir AdderNet CPU kernels (forward, HardTanh input gradient)";
  m.def("forward", &adder_forward, "Y = -sum |Xcol - W|", py::arg("x"), py::arg("w"),
        py::arg("stride"), py::arg("padding"), py::arg("isa") = -1,
        py::call_guard<py::gil_scoped_release>());
  m.def("input_grad", &adder_input_grad, "sum_o clamp(W - Xcol, -1, 1) * grad_out, folded",
        py::arg("x"), py::arg("w"), py::arg("grad_out"), py::arg("stride"), py::arg("padding"),
        py::arg("isa") = -1, py::call_guard<py::gil_scoped_release>());
  m.def("best_isa", &best_isa, "0 = baseline SSE2, 1 = AVX2+FMA, 2 = AVX-512F");
}

#else  // NASIR_ADDER_ISA_PART: compiled once per instruction set, see above

template <typename V>
NASIR_INLINE V loadu(const void* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

template <typename V>
NASIR_INLINE void storeu(void* p, V v) {
  std::memcpy(p, &v, sizeof(V));
}

// {w, w, ..., w} compiles to one broadcast (V{} + w would add 0.0, which GCC keeps, and a
// lane-by-lane fill may go through the stack).
template <typename V, typename T, std::size_t... I>
NASIR_INLINE V broadcast_lanes(T w, std::index_sequence<I...>) {
  return V{((void)I, w)...};
}

template <typename V, typename T>
NASIR_INLINE V broadcast(T w) {
  return broadcast_lanes<V>(w, std::make_index_sequence<sizeof(V) / sizeof(T)>{});
}
// ---------------------------------------------------------------------------------------
// Register tiles. MR output channels x NV vectors of positions, reduction over all K.

template <typename T, int Bytes, int MR, int NV>
NASIR_INLINE void forward_tile(const T* xp, const T* wp, int64_t K, T* out) {
  typedef typename Vec<T, Bytes>::V V;
  typedef typename Vec<T, Bytes>::I I;
  constexpr int LN = Bytes / sizeof(T);
  constexpr int NR = NV * LN;
  typedef typename std::conditional<sizeof(T) == 4, int32_t, int64_t>::type Int;
  const I mask = I{} + std::numeric_limits<Int>::max();
  V acc[MR][NV];
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) acc[m][v] = V{};
  for (int64_t k = 0; k < K; ++k) {
    V xv[NV];
    for (int v = 0; v < NV; ++v) xv[v] = loadu<V>(xp + k * NR + v * LN);
    for (int m = 0; m < MR; ++m) {
      const V wb = broadcast<V>(wp[k * MR + m]);
      for (int v = 0; v < NV; ++v) {
        const V d = xv[v] - wb;
        acc[m][v] += (V)((I)d & mask);
      }
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) storeu(out + m * NR + v * LN, acc[m][v]);
}

// KR rows of dXcol x NV vectors of positions, reduction over the O output channels.
// The clip bound is a run-time value: with a literal 1, GCC turns the clamp into
// compare-and-blend pairs on AVX-512 instead of vmaxps / vminps.
template <typename T, int Bytes, int KR, int NV>
NASIR_INLINE void input_grad_tile(const T* xp, const T* gp, const T* wp, int64_t O, T clip,
                                  T* out) {
  typedef typename Vec<T, Bytes>::V V;
  constexpr int LN = Bytes / sizeof(T);
  constexpr int NR = NV * LN;
  const V hi = broadcast<V>(clip);
  const V lo = broadcast<V>(-clip);
  V xv[KR][NV];
  V acc[KR][NV];
  for (int r = 0; r < KR; ++r)
    for (int v = 0; v < NV; ++v) {
      xv[r][v] = loadu<V>(xp + r * NR + v * LN);
      acc[r][v] = V{};
    }
  for (int64_t o = 0; o < O; ++o) {
    V gv[NV];
    for (int v = 0; v < NV; ++v) gv[v] = loadu<V>(gp + o * NR + v * LN);
    for (int r = 0; r < KR; ++r) {
      const V wb = broadcast<V>(wp[o * KR + r]);
      for (int v = 0; v < NV; ++v) {
        V d = wb - xv[r][v];
        d = lo > d ? lo : d;  // vmaxps(lo, d): returns d if d is NaN, like torch.clamp
        d = hi < d ? hi : d;
        acc[r][v] += d * gv[v];
      }
    }
  }
  for (int r = 0; r < KR; ++r)
    for (int v = 0; v < NV; ++v) storeu(out + r * NR + v * LN, acc[r][v]);
}
template <typename T, int Bytes, int MR, int NV>
NASIR_INLINE void forward_chunk(const ForwardArgs<T>& a) {
  constexpr int NR = NV * (Bytes / sizeof(T));
  T tile[MR * NR];
  const int64_t panels = (a.np + NR - 1) / NR;
  for (int64_t q = 0; q < panels; ++q) {
    const T* xp = a.cols + q * a.K * NR;
    const int64_t nt = std::min<int64_t>(NR, a.np - q * NR);
    T* yq = a.y + a.p0 + q * NR;
    for (int64_t ob = 0; ob < a.O; ob += MR) {
      forward_tile<T, Bytes, MR, NV>(xp, a.wpack + ob * a.K, a.K, tile);
      const int64_t nm = std::min<int64_t>(MR, a.O - ob);
      for (int64_t m = 0; m < nm; ++m)
        for (int64_t t = 0; t < nt; ++t) yq[(ob + m) * a.L + t] = -tile[m * NR + t];
    }
  }
}

template <typename T, int Bytes, int KR, int NV>
NASIR_INLINE void input_grad_chunk(const InputGradArgs<T>& a) {
  constexpr int NR = NV * (Bytes / sizeof(T));
  T tile[KR * NR];
  const int64_t panels = (a.np + NR - 1) / NR;
  const int64_t kk = a.KH * a.KW;
  for (int64_t q = 0; q < panels; ++q) {
    const T* xq = a.cols + q * a.KcPad * NR;
    const T* gq = a.gpack + q * a.O * NR;
    for (int64_t kb = 0; kb < a.KcPad; kb += KR) {
      input_grad_tile<T, Bytes, KR, NV>(xq + kb * NR, gq, a.wpack + kb * a.O, a.O, a.clip,
                                        tile);
      // Fold the tile back onto the input, a run at a time (col2im).
      const int64_t nk = std::min<int64_t>(KR, a.Kc - kb);
      for (int64_t r = 0; r < nk; ++r) {
        const int64_t k = kb + r;
        const int64_t c = k / kk, u = (k % kk) / a.KW, v = k % a.KW;
        T* dxc = a.dx + c * a.H * a.W;
        const T* src = tile + r * NR;
        for (int64_t ri = a.run_begin[q]; ri < a.run_begin[q + 1]; ++ri) {
          const Run& run = a.runs[ri];
          const int64_t ih = run.ih0 + u;
          if (static_cast<uint64_t>(ih) >= static_cast<uint64_t>(a.H)) continue;
          const int64_t base = run.iw0 + v;
          int64_t lo, hi;
          inside_slots(base, run.t1 - run.t0, a.S, a.W, lo, hi);
          T* dst = dxc + ih * a.W + base;
          const T* from = src + run.t0;
          if (a.S == 1) {
            for (int64_t m = lo; m < hi; ++m) dst[m] += from[m];
          } else {
            for (int64_t m = lo; m < hi; ++m) dst[m * a.S] += from[m];
          }
        }
      }
    }
  }
}

void forward_f32(const ForwardArgs<float>& a) { forward_chunk<float, kBytes, kMR, kNV>(a); }
void forward_f64(const ForwardArgs<double>& a) { forward_chunk<double, kBytes, kMR, kNV>(a); }
void input_grad_f32(const InputGradArgs<float>& a) {
  input_grad_chunk<float, kBytes, kKR, kNV>(a);
}
void input_grad_f64(const InputGradArgs<double>& a) {
  input_grad_chunk<double, kBytes, kKR, kNV>(a);
}

#endif  // NASIR_ADDER_ISA_PART
