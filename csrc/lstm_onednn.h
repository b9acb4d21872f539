// fastlstm's native CPU kernel: one LSTM layer over whole sequences, forward
// and backward, on oneDNN: its LSTM inference primitive, and for training a
// recurrence of fastlstm's own on its GEMM.
//
// Layouts are Keras's: inputs (batch, time, features) batch-major; kernel
// (features, 4 * units), recurrent kernel (units, 4 * units) and bias
// (4 * units,), gate order i, f, c, o (oneDNN's `ldigo` / `ldgo` with one
// layer and one direction); states (batch, units). The equations are those
// of python/fastlstm/equations.py.
//
// Any of batch, steps and features may be 0: the results are what the
// equations give (no step: the states pass through, and their gradients;
// no features: the input adds nothing to the gates). Inference primitives
// are kept for the 64 shapes used last (least recently used first out).
//
// `threads` is how many threads a call may use: its rows are split into
// that many blocks of consecutive rows (of at least 8 rows; rows of unequal
// length into blocks of about as many valid steps), each run on one
// thread. The
// framework bindings (JAX FFI, TensorFlow op) call these functions; the
// Python side owns shapes, dtypes and error messages, and check_shapes()
// catches what it could not see. Functions return an empty string on
// success, else the error.

#ifndef FASTLSTM_LSTM_ONEDNN_H_
#define FASTLSTM_LSTM_ONEDNN_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fastlstm {

// Where a call's blocks of rows run: on threads of fastlstm's own, asleep
// between calls (the default: JAX and TensorFlow call from threads of their
// own pools), or on the OpenMP team of the calling thread (PyTorch, whose
// intra-op threads are that team: its threads would otherwise spin beside
// fastlstm's own after each of PyTorch's parallel ops, on the same cores).
enum class PartThreads { kOwn, kCallersOpenMP };
void set_part_threads(PartThreads threads);

struct Dims {
  int64_t batch;
  int64_t steps;
  int64_t features;
  int64_t units;
  // Matrix products in bfloat16: both factors rounded to bfloat16 (nearest
  // even), their sums kept in float32 (oneDNN's matmul, on AMX or
  // AVX512-BF16); the gates, states and everything else stay float32. Every
  // pass then runs fastlstm's own recurrence. Only where
  // bf16_products_supported().
  bool bf16 = false;
};

// Whether this CPU makes bfloat16 products natively (oneDNN has a bfloat16
// matmul here other than its slow reference one): AMX or AVX512-BF16.
bool bf16_products_supported();

// The rows' valid spans: row r runs x[r, starts[r] : starts[r] + lengths[r]]
// as its steps 0, 1, ...; `starts` null means 0 for every row, `lengths`
// null means every step of every row.
struct Spans {
  const int32_t* starts;
  const int32_t* lengths;
};

struct Weights {
  const float* kernel;            // (features, 4 * units)
  const float* recurrent_kernel;  // (units, 4 * units)
  const float* bias;              // (4 * units,)
  // With Dims::bf16, the kernels rounded to bfloat16, made once per call by
  // the functions below (callers leave them null).
  const uint16_t* kernel_bf16 = nullptr;
  const uint16_t* recurrent_kernel_bf16 = nullptr;
};

// An empty string where the shapes of a call agree: x (batch, time,
// features), h0 and c0 (batch, units), kernel (features, 4 * units),
// recurrent kernel (units, 4 * units), bias (4 * units,); else what does
// not, in the words of fastlstm's Python checks. Python checks shapes
// before it calls; this is for what it could not see, a dimension unknown
// while a graph was traced (TensorFlow's relaxed shapes).
std::string check_shapes(const std::vector<int64_t>& x,
                         const std::vector<int64_t>& h0,
                         const std::vector<int64_t>& c0,
                         const std::vector<int64_t>& kernel,
                         const std::vector<int64_t>& recurrent_kernel,
                         const std::vector<int64_t>& bias);

// `spans` (Spans) give each row the steps it runs: its outputs are
// front-aligned (step t is its span's t-th; zeros past its length), its
// final states are those after its last valid step (the initial ones for an
// empty row), and the gradients reaching its inputs outside its span are
// zeros. Steps outside the spans cost nothing: each step runs only the rows
// still running (ragged compute), and a left-padded row is read where it
// lies, never rotated.

// Inference, keeping nothing for a gradient. Without padding, oneDNN's
// inference primitive runs, in chunks of steps, so that its scratchpad
// (which holds each step's input product) stays bounded however long the
// sequence; with padding, fastlstm's own recurrence (see lstm_training),
// likewise bounded. `y` (batch, time, units) may be null where the caller
// needs no outputs.
std::string lstm_inference(const Dims& dims, const float* x, const float* h0,
                           const float* c0, const Weights& w, const Spans& spans,
                           float* y, float* h_last, float* c_last, int threads);

// Steps per chunk of lstm_inference() without padding, with or without
// outputs written.
std::string inference_chunk_steps(const Dims& dims, bool outputs,
                                  int64_t* steps);

// Bytes of the workspace a training forward pass with `threads` leaves for
// the backward: each step's activated gates and cell state.
std::string workspace_bytes(const Dims& dims, int threads, size_t* bytes);

// Training forward: outputs, final states, and the workspace
// (workspace_bytes()) that lstm_backward() reads.
std::string lstm_training(const Dims& d, const float* x, const float* h0,
                          const float* c0, const Weights& w, const Spans& spans,
                          float* y, float* h_last, float* c_last,
                          void* workspace, int threads);

// Gradients of one training pass, with the same `spans`. `y` and
// `workspace` are that pass's outputs; `dy`, `dh_last`, `dc_last` the
// gradients reaching its outputs and final states (those reaching outputs
// past a row's length are not read). `scratch` (workspace_bytes() large)
// receives intermediate gradients; it may be the workspace itself, which is
// then overwritten. The rows are split as in the training pass.
std::string lstm_backward(const Dims& dims, const float* x, const float* h0,
                          const float* c0, const Weights& w, const Spans& spans,
                          const float* y,
                          const void* workspace, const float* dy,
                          const float* dh_last, const float* dc_last,
                          float* dx, float* dh0, float* dc0, float* dkernel,
                          float* drecurrent_kernel, float* dbias, void* scratch);

}  // namespace fastlstm

#endif  // FASTLSTM_LSTM_ONEDNN_H_
