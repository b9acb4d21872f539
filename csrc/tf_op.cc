// TensorFlow binding: CPU ops around the oneDNN LSTM (lstm_onednn.h),
// written against TensorFlow's C API for ops and kernels, which does not
// depend on the C++ ABI TensorFlow was built with.
//
//   FastlstmLstmInference(x, h0, c0, kernel, recurrent_kernel, bias, starts,
//                         lengths) -> (y, h, c)
//       attrs: sequences (bool), threads (int), bf16 (bool)
//   FastlstmLstm(x, h0, c0, kernel, recurrent_kernel, bias, starts, lengths)
//       -> (y, h, c, workspace)   attrs: threads, bf16  (training forward)
//   FastlstmLstmGrad(x, h0, c0, kernel, recurrent_kernel, bias, starts,
//                    lengths, y, workspace, dy, dh, dc)
//       -> (dx, dh0, dc0, dkernel, drecurrent_kernel, dbias)
//       attrs: threads, bf16
//
// `bf16` is Dims::bf16 (bfloat16 products); c_api.cc, linked in too, says
// whether this CPU makes them.
//
// Every op takes the rows' spans, `starts` and `lengths` (lstm_onednn.h); the
// inference op, with sequences=False, returns y with no steps. The gradients
// are registered in Python (fastlstm/kernels/tensorflow.py), which owns
// shapes and messages.

#include <cstring>
#include <string>
#include <vector>

#include "lstm_onednn.h"
#include "tensorflow/c/kernels.h"
#include "tensorflow/c/ops.h"
#include "tensorflow/c/tf_status.h"
#include "tensorflow/c/tf_tensor.h"

namespace {

const int kForwardInputs = 6;

const int32_t* int32s(TF_Tensor* t) {
  return static_cast<const int32_t*>(TF_TensorData(t));
}

// The spans of the two int32 inputs from `first`: starts, lengths.
fastlstm::Spans spans_of(TF_Tensor* const* in, int first) {
  return {int32s(in[first]), int32s(in[first + 1])};
}

std::vector<int64_t> shape_of(TF_Tensor* t) {
  std::vector<int64_t> dims(TF_NumDims(t));
  for (size_t k = 0; k < dims.size(); ++k) dims[k] = TF_Dim(t, k);
  return dims;
}

// The tensors of one kernel call, released when the call ends.
class Call {
 public:
  explicit Call(TF_OpKernelContext* ctx) : ctx_(ctx), status_(TF_NewStatus()) {}
  ~Call() {
    for (TF_Tensor* t : tensors_) TF_DeleteTensor(t);
    TF_DeleteStatus(status_);
  }

  bool ok() const { return TF_GetCode(status_) == TF_OK; }

  TF_Tensor* input(int i) {
    TF_Tensor* t = nullptr;
    if (ok()) TF_GetInput(ctx_, i, &t, status_);
    if (t) tensors_.push_back(t);
    return t;
  }

  void* output(int i, TF_DataType dtype, std::vector<int64_t> dims) {
    if (!ok()) return nullptr;
    size_t bytes = TF_DataTypeSize(dtype);
    for (int64_t d : dims) bytes *= static_cast<size_t>(d);
    TF_Tensor* t = TF_AllocateOutput(ctx_, i, dtype, dims.data(),
                                     static_cast<int>(dims.size()), bytes,
                                     status_);
    if (!t) return nullptr;
    tensors_.push_back(t);
    return TF_TensorData(t);
  }

  // A buffer of `bytes` for this call only, from TensorFlow's allocator
  // (which reuses its memory: no fresh pages each call).
  void* temp(size_t bytes) {
    if (!ok()) return nullptr;
    int64_t dims[1] = {static_cast<int64_t>(bytes)};
    TF_AllocatorAttributes attrs;
    attrs.struct_size = TF_ALLOCATOR_ATTRIBUTES_STRUCT_SIZE;
    attrs.on_host = 1;
    TF_Tensor* t = TF_AllocateTemp(ctx_, TF_UINT8, dims, 1, &attrs, status_);
    if (!t) return nullptr;
    tensors_.push_back(t);
    return TF_TensorData(t);
  }

  void* output_like(int i, TF_Tensor* like) {
    return output(i, TF_FLOAT, shape_of(like));
  }

  // Reports shapes that do not fit together, as an invalid argument.
  void invalid(const std::string& error) {
    TF_SetStatus(status_, TF_INVALID_ARGUMENT, error.c_str());
    TF_OpKernelContext_Failure(ctx_, status_);
  }

  // Reports `error` (or a failed allocation) to TensorFlow.
  void finish(const std::string& error) {
    if (!error.empty()) {
      TF_SetStatus(status_, TF_INTERNAL, ("fastlstm oneDNN LSTM: " + error).c_str());
    }
    if (!ok()) TF_OpKernelContext_Failure(ctx_, status_);
  }

 private:
  TF_OpKernelContext* ctx_;
  TF_Status* status_;
  std::vector<TF_Tensor*> tensors_;
};

const float* data(TF_Tensor* t) { return static_cast<const float*>(TF_TensorData(t)); }

struct Attrs {
  bool sequences = true;
  int threads = 0;
  bool bf16 = false;  // Dims::bf16
};

void* create(TF_OpKernelConstruction* ctx) {
  auto* attrs = new Attrs;
  TF_Status* status = TF_NewStatus();
  int64_t threads = 0;
  TF_OpKernelConstruction_GetAttrInt64(ctx, "threads", &threads, status);
  attrs->threads = static_cast<int>(threads);
  if (TF_GetCode(status) == TF_OK &&
      TF_OpKernelConstruction_HasAttr(ctx, "sequences", status)) {
    TF_Bool sequences = 1;
    TF_OpKernelConstruction_GetAttrBool(ctx, "sequences", &sequences, status);
    attrs->sequences = sequences;
  }
  if (TF_GetCode(status) == TF_OK &&
      TF_OpKernelConstruction_HasAttr(ctx, "bf16", status)) {
    TF_Bool bf16 = 0;
    TF_OpKernelConstruction_GetAttrBool(ctx, "bf16", &bf16, status);
    attrs->bf16 = bf16;
  }
  if (TF_GetCode(status) != TF_OK) TF_OpKernelConstruction_Failure(ctx, status);
  TF_DeleteStatus(status);
  return attrs;
}

void destroy(void* attrs) { delete static_cast<Attrs*>(attrs); }

// The shapes of the forward inputs (x, h0, c0, kernel, recurrent_kernel,
// bias), checked: a graph traced with a dimension unknown reaches the op
// unchecked by Python.
std::string check_forward_shapes(TF_Tensor* const* in) {
  return fastlstm::check_shapes(shape_of(in[0]), shape_of(in[1]),
                                shape_of(in[2]), shape_of(in[3]),
                                shape_of(in[4]), shape_of(in[5]));
}

fastlstm::Dims dims_of(TF_Tensor* x, TF_Tensor* recurrent_kernel, const Attrs& attrs) {
  return {TF_Dim(x, 0), TF_Dim(x, 1), TF_Dim(x, 2), TF_Dim(recurrent_kernel, 0),
          attrs.bf16};
}

void inference(void* kernel_attrs, TF_OpKernelContext* ctx) {
  const Attrs& attrs = *static_cast<Attrs*>(kernel_attrs);
  Call call(ctx);
  TF_Tensor* in[kForwardInputs + 2];
  for (int i = 0; i < kForwardInputs + 2; ++i) in[i] = call.input(i);
  if (!call.ok()) return call.finish("");
  std::string shapes = check_forward_shapes(in);
  if (!shapes.empty()) return call.invalid(shapes);
  fastlstm::Dims d = dims_of(in[0], in[4], attrs);
  auto* y = static_cast<float*>(call.output(
      0, TF_FLOAT, {d.batch, attrs.sequences ? d.steps : 0, d.units}));
  auto* h = static_cast<float*>(call.output_like(1, in[1]));
  auto* c = static_cast<float*>(call.output_like(2, in[2]));
  if (!call.ok()) return call.finish("");
  fastlstm::Weights w{data(in[3]), data(in[4]), data(in[5])};
  call.finish(fastlstm::lstm_inference(
      d, data(in[0]), data(in[1]), data(in[2]), w,
      spans_of(in, kForwardInputs),
      attrs.sequences ? y : nullptr, h, c, attrs.threads));
}

void training(void* kernel_attrs, TF_OpKernelContext* ctx) {
  const Attrs& attrs = *static_cast<Attrs*>(kernel_attrs);
  Call call(ctx);
  TF_Tensor* in[kForwardInputs + 2];
  for (int i = 0; i < kForwardInputs + 2; ++i) in[i] = call.input(i);
  if (!call.ok()) return call.finish("");
  std::string shapes = check_forward_shapes(in);
  if (!shapes.empty()) return call.invalid(shapes);
  fastlstm::Dims d = dims_of(in[0], in[4], attrs);
  size_t ws_bytes = 0;
  std::string error = fastlstm::workspace_bytes(d, attrs.threads, &ws_bytes);
  if (!error.empty()) return call.finish(error);
  auto* y = static_cast<float*>(call.output(0, TF_FLOAT, {d.batch, d.steps, d.units}));
  auto* h = static_cast<float*>(call.output_like(1, in[1]));
  auto* c = static_cast<float*>(call.output_like(2, in[2]));
  void* ws = call.output(3, TF_UINT8, {static_cast<int64_t>(ws_bytes)});
  if (!call.ok()) return call.finish("");
  fastlstm::Weights w{data(in[3]), data(in[4]), data(in[5])};
  call.finish(fastlstm::lstm_training(
      d, data(in[0]), data(in[1]), data(in[2]), w,
      spans_of(in, kForwardInputs), y, h, c, ws,
      attrs.threads));
}

void backward(void* kernel_attrs, TF_OpKernelContext* ctx) {
  // The rows are split as in the training pass: `threads` is not read.
  const Attrs& attrs = *static_cast<Attrs*>(kernel_attrs);
  Call call(ctx);
  TF_Tensor* in[13];
  for (int i = 0; i < 13; ++i) in[i] = call.input(i);
  if (!call.ok()) return call.finish("");
  float* out[kForwardInputs];
  for (int i = 0; i < kForwardInputs; ++i) {
    out[i] = static_cast<float*>(call.output_like(i, in[i]));
  }
  // The workspace is an input, so the backward pass writes its intermediate
  // gradients to a buffer of the same size.
  void* scratch = call.temp(TF_TensorByteSize(in[9]));
  if (!call.ok()) return call.finish("");
  fastlstm::Weights w{data(in[3]), data(in[4]), data(in[5])};
  call.finish(fastlstm::lstm_backward(
      dims_of(in[0], in[4], attrs), data(in[0]), data(in[1]), data(in[2]), w,
      spans_of(in, kForwardInputs), data(in[8]), TF_TensorData(in[9]),
      data(in[10]), data(in[11]), data(in[12]), out[0],
      out[1], out[2], out[3], out[4], out[5], scratch));
}

// Shape functions: y is (batch, time, units); every other output has the
// shape of an input.
void set_output_to_input(TF_ShapeInferenceContext* ctx, int output, int input,
                         TF_Status* status) {
  TF_ShapeHandle* shape = TF_NewShapeHandle();
  TF_ShapeInferenceContextGetInput(ctx, input, shape, status);
  if (TF_GetCode(status) == TF_OK) {
    TF_ShapeInferenceContextSetOutput(ctx, output, shape, status);
  }
  TF_DeleteShapeHandle(shape);
}

// y is (batch, time, units); with `unknown_time`, (batch, ?, units).
void outputs_shape(TF_ShapeInferenceContext* ctx, TF_Status* status,
                   bool unknown_time) {
  TF_ShapeHandle* x = TF_NewShapeHandle();
  TF_ShapeHandle* recurrent = TF_NewShapeHandle();
  TF_ShapeHandle* batch_time = TF_NewShapeHandle();
  TF_ShapeHandle* units = TF_NewShapeHandle();
  TF_ShapeHandle* y = TF_NewShapeHandle();
  TF_ShapeInferenceContextGetInput(ctx, 0, x, status);
  if (TF_GetCode(status) == TF_OK) TF_ShapeInferenceContextGetInput(ctx, 4, recurrent, status);
  if (TF_GetCode(status) == TF_OK) {
    TF_ShapeInferenceContextSubshape(ctx, x, 0, unknown_time ? 1 : 2, batch_time, status);
  }
  if (TF_GetCode(status) == TF_OK && unknown_time) {
    TF_ShapeHandle* time = TF_ShapeInferenceContextVectorFromSize(ctx, static_cast<size_t>(-1));
    TF_ShapeHandle* batch_only = batch_time;
    batch_time = TF_NewShapeHandle();
    TF_ShapeInferenceContextConcatenateShapes(ctx, batch_only, time, batch_time, status);
    TF_DeleteShapeHandle(time);
    TF_DeleteShapeHandle(batch_only);
  }
  if (TF_GetCode(status) == TF_OK) TF_ShapeInferenceContextSubshape(ctx, recurrent, 0, 1, units, status);
  if (TF_GetCode(status) == TF_OK) TF_ShapeInferenceContextConcatenateShapes(ctx, batch_time, units, y, status);
  if (TF_GetCode(status) == TF_OK) TF_ShapeInferenceContextSetOutput(ctx, 0, y, status);
  for (TF_ShapeHandle* s : {x, recurrent, batch_time, units, y}) TF_DeleteShapeHandle(s);
  if (TF_GetCode(status) != TF_OK) return;
  set_output_to_input(ctx, 1, 1, status);
  if (TF_GetCode(status) == TF_OK) set_output_to_input(ctx, 2, 2, status);
}

// The time axis of y is empty with sequences=False, an attribute the C API's
// shape functions cannot read: Python sets the static shape.
void inference_shapes(TF_ShapeInferenceContext* ctx, TF_Status* status) {
  outputs_shape(ctx, status, true);
}

void training_shapes(TF_ShapeInferenceContext* ctx, TF_Status* status) {
  outputs_shape(ctx, status, false);
  if (TF_GetCode(status) != TF_OK) return;
  // The workspace size is known to oneDNN at run time only.
  TF_ShapeHandle* ws = TF_ShapeInferenceContextVectorFromSize(ctx, static_cast<size_t>(-1));
  TF_ShapeInferenceContextSetOutput(ctx, 3, ws, status);
  TF_DeleteShapeHandle(ws);
}

void backward_shapes(TF_ShapeInferenceContext* ctx, TF_Status* status) {
  for (int i = 0; i < kForwardInputs && TF_GetCode(status) == TF_OK; ++i) {
    set_output_to_input(ctx, i, i, status);
  }
}

const char* const kForwardArgs[] = {"x: float", "h0: float", "c0: float",
                                    "kernel: float", "recurrent_kernel: float",
                                    "bias: float"};

void register_op(const char* name, const std::vector<std::string>& inputs,
                 const std::vector<std::string>& outputs,
                 const std::vector<std::string>& attrs,
                 void (*shapes)(TF_ShapeInferenceContext*, TF_Status*),
                 void (*compute)(void*, TF_OpKernelContext*)) {
  TF_Status* status = TF_NewStatus();
  TF_OpDefinitionBuilder* op = TF_NewOpDefinitionBuilder(name);
  for (const auto& s : inputs) TF_OpDefinitionBuilderAddInput(op, s.c_str());
  for (const auto& s : outputs) TF_OpDefinitionBuilderAddOutput(op, s.c_str());
  for (const auto& s : attrs) TF_OpDefinitionBuilderAddAttr(op, s.c_str());
  TF_OpDefinitionBuilderSetShapeInferenceFunction(op, shapes);
  TF_RegisterOpDefinition(op, status);
  if (TF_GetCode(status) == TF_OK) {
    TF_KernelBuilder* kernel = TF_NewKernelBuilder(name, "CPU", create, compute, destroy);
    TF_RegisterKernelBuilder(name, kernel, status);
  }
  TF_DeleteStatus(status);
}

struct Registration {
  Registration() {
    std::vector<std::string> forward_inputs(kForwardArgs, kForwardArgs + kForwardInputs);
    forward_inputs.push_back("starts: int32");
    forward_inputs.push_back("lengths: int32");
    register_op("FastlstmLstmInference", forward_inputs,
                {"y: float", "h: float", "c: float"},
                {"sequences: bool = true", "threads: int = 0", "bf16: bool = false"},
                inference_shapes,
                inference);
    register_op("FastlstmLstm", forward_inputs,
                {"y: float", "h: float", "c: float", "workspace: uint8"},
                {"threads: int = 0", "bf16: bool = false"}, training_shapes, training);
    std::vector<std::string> grad_inputs = forward_inputs;
    for (const char* s : {"y: float", "workspace: uint8", "dy: float",
                          "dh: float", "dc: float"}) {
      grad_inputs.push_back(s);
    }
    register_op("FastlstmLstmGrad", grad_inputs,
                {"dx: float", "dh0: float", "dc0: float", "dkernel: float",
                 "drecurrent_kernel: float", "dbias: float"},
                {"threads: int = 0", "bf16: bool = false"}, backward_shapes, backward);
  }
};

Registration registration;

}  // namespace
