// JAX binding: XLA FFI handlers around the oneDNN LSTM (lstm_onednn.h).
//
// Python registers the handler symbols with jax.ffi.register_ffi_target and
// asks fastlstm_workspace_bytes() (c_api.cc, linked into this library too)
// for the size of the workspace output, which XLA needs before the call.
// Python checks shapes before a call; the handlers check them again
// (check_shapes) to guard the kernel's memory.

#include <string>
#include <vector>

#include "lstm_onednn.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using F32 = ffi::Buffer<ffi::F32>;
using F32Out = ffi::ResultBuffer<ffi::F32>;
using U8 = ffi::Buffer<ffi::U8>;
using U8Out = ffi::ResultBuffer<ffi::U8>;

// `bf16` (an attribute, 0 or 1) is Dims::bf16.
fastlstm::Dims dims_of(const F32& x, const F32& recurrent_kernel, int64_t bf16) {
  auto d = x.dimensions();
  return {d[0], d[1], d[2], recurrent_kernel.dimensions()[0], bf16 != 0};
}

ffi::Error status(const std::string& error) {
  return error.empty() ? ffi::Error::Success() : ffi::Error::Internal(error);
}

std::vector<int64_t> shape_of(const F32& t) {
  auto d = t.dimensions();
  return std::vector<int64_t>(d.begin(), d.end());
}

// Python checks the shapes before a call; this guards the kernel's memory
// all the same.
std::string check_forward_shapes(const F32& x, const F32& h0, const F32& c0,
                                 const F32& kernel, const F32& recurrent_kernel,
                                 const F32& bias) {
  return fastlstm::check_shapes(shape_of(x), shape_of(h0), shape_of(c0),
                                shape_of(kernel), shape_of(recurrent_kernel),
                                shape_of(bias));
}

// y may have no steps: the caller needs only the states.
using S32 = ffi::Buffer<ffi::S32>;

fastlstm::Spans spans_of(const S32& starts, const S32& lengths) {
  return {starts.typed_data(), lengths.typed_data()};
}

ffi::Error Inference(F32 x, F32 h0, F32 c0, F32 kernel, F32 recurrent_kernel,
                     F32 bias, S32 starts, S32 lengths, F32Out y,
                     F32Out h, F32Out c, int64_t threads, int64_t bf16) {
  std::string shapes = check_forward_shapes(x, h0, c0, kernel, recurrent_kernel, bias);
  if (!shapes.empty()) return ffi::Error::InvalidArgument(shapes);
  fastlstm::Weights w{kernel.typed_data(), recurrent_kernel.typed_data(),
                      bias.typed_data()};
  float* outputs = y->element_count() ? y->typed_data() : nullptr;
  return status(fastlstm::lstm_inference(
      dims_of(x, recurrent_kernel, bf16), x.typed_data(), h0.typed_data(),
      c0.typed_data(), w, spans_of(starts, lengths), outputs, h->typed_data(),
      c->typed_data(), static_cast<int>(threads)));
}

ffi::Error Training(F32 x, F32 h0, F32 c0, F32 kernel, F32 recurrent_kernel,
                    F32 bias, S32 starts, S32 lengths, F32Out y, F32Out h,
                    F32Out c, U8Out workspace, int64_t threads, int64_t bf16) {
  std::string shapes = check_forward_shapes(x, h0, c0, kernel, recurrent_kernel, bias);
  if (!shapes.empty()) return ffi::Error::InvalidArgument(shapes);
  fastlstm::Weights w{kernel.typed_data(), recurrent_kernel.typed_data(),
                      bias.typed_data()};
  return status(fastlstm::lstm_training(
      dims_of(x, recurrent_kernel, bf16), x.typed_data(), h0.typed_data(),
      c0.typed_data(), w, spans_of(starts, lengths), y->typed_data(),
      h->typed_data(), c->typed_data(), workspace->untyped_data(),
      static_cast<int>(threads)));
}

// `scratch` is the workspace itself (Python aliases the two), which the
// backward pass overwrites.
ffi::Error Backward(F32 x, F32 h0, F32 c0, F32 kernel, F32 recurrent_kernel,
                    F32 bias, S32 starts, S32 lengths, F32 y, U8 workspace,
                    F32 dy, F32 dh, F32 dc,
                    F32Out dx, F32Out dh0, F32Out dc0, F32Out dkernel,
                    F32Out drecurrent_kernel, F32Out dbias, U8Out scratch,
                    int64_t threads, int64_t bf16) {
  (void)threads;  // the rows are split as in the training pass
  fastlstm::Weights w{kernel.typed_data(), recurrent_kernel.typed_data(),
                      bias.typed_data()};
  return status(fastlstm::lstm_backward(
      dims_of(x, recurrent_kernel, bf16), x.typed_data(), h0.typed_data(),
      c0.typed_data(), w, spans_of(starts, lengths), y.typed_data(),
      workspace.untyped_data(),
      dy.typed_data(), dh.typed_data(), dc.typed_data(), dx->typed_data(),
      dh0->typed_data(), dc0->typed_data(), dkernel->typed_data(),
      drecurrent_kernel->typed_data(), dbias->typed_data(),
      scratch->untyped_data()));
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(FastlstmInference, Inference,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<ffi::Buffer<ffi::S32>>()  // starts
                                  .Arg<ffi::Buffer<ffi::S32>>()  // lengths
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Attr<int64_t>("threads")
                                  .Attr<int64_t>("bf16"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(FastlstmTraining, Training,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<ffi::Buffer<ffi::S32>>()  // starts
                                  .Arg<ffi::Buffer<ffi::S32>>()  // lengths
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Ret<ffi::Buffer<ffi::U8>>()
                                  .Attr<int64_t>("threads")
                                  .Attr<int64_t>("bf16"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(FastlstmBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()  // x
                                  .Arg<F32>()  // h0
                                  .Arg<F32>()  // c0
                                  .Arg<F32>()  // kernel
                                  .Arg<F32>()  // recurrent_kernel
                                  .Arg<F32>()  // bias
                                  .Arg<ffi::Buffer<ffi::S32>>()  // starts
                                  .Arg<ffi::Buffer<ffi::S32>>()  // lengths
                                  .Arg<F32>()  // y
                                  .Arg<ffi::Buffer<ffi::U8>>()  // workspace
                                  .Arg<F32>()  // dy
                                  .Arg<F32>()  // dh
                                  .Arg<F32>()  // dc
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Ret<ffi::Buffer<ffi::U8>>()  // scratch
                                  .Attr<int64_t>("threads")
                                  .Attr<int64_t>("bf16"));
