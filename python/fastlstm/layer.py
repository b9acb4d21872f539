"""fastlstm.LSTM: keras.layers.LSTM with a kernel chosen per call."""

import keras
from keras import ops
from keras import tree

from fastlstm import _sequence
from fastlstm import _validation
from fastlstm import kernels as _kernels
from fastlstm import planner


@keras.saving.register_keras_serializable(package="fastlstm")
class LSTM(keras.layers.LSTM):
    """Long Short-Term Memory layer - Hochreiter 1997, fast on every backend.

    A drop-in replacement for `keras.layers.LSTM`: the same arguments,
    weights, semantics and saved form, with one more promise: each call runs
    the fastest kernel that gives the reference numbers (Keras's generic
    loop), and `fastlstm.plan()` tells which one and why.

    - `cudnn` on a GPU, on TensorFlow, JAX and PyTorch alike, also for
      masked batches whose rows are one contiguous span each: right-padded
      rows go in as sequence lengths, left-padded rows (the default of
      `pad_sequences()`) are rotated to the front and back.
    - `native` on a CPU: torch's fused LSTM on PyTorch, oneDNN's LSTM
      (compiled with fastlstm) on TensorFlow and JAX, with the same
      handling of masks.
    - `loop` otherwise: a backend loop with the input projection hoisted out
      of the recurrence and the gates fused.
    - `unrolled` with `unroll=True`.

    Args: as `keras.layers.LSTM`. Where Keras clips `dropout` and
    `recurrent_dropout` into [0, 1], fastlstm raises a `ValueError`;
    `use_cudnn=True` raises where cuDNN cannot run, naming each unmet
    requirement, on every backend.
    """

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        use_cudnn="auto",
        **kwargs,
    ):
        units = _validation.check_units(units)
        dropout = _validation.check_rate("dropout", dropout)
        recurrent_dropout = _validation.check_rate(
            "recurrent_dropout", recurrent_dropout
        )
        _validation.check_activation("activation", activation)
        _validation.check_activation("recurrent_activation", recurrent_activation)
        _validation.check_use_cudnn(use_cudnn)
        super().__init__(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            use_cudnn=use_cudnn,
            **kwargs,
        )
        # The rank is checked in build() and call(), with a message that
        # names `inputs`, instead of by a generic InputSpec.
        self.input_spec = None

    def build(self, sequences_shape, initial_state_shape=None):
        _validation.check_inputs_shape(sequences_shape)
        if self.stateful:
            _validation.check_stateful_batch(sequences_shape)
        super().build(sequences_shape, initial_state_shape)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        _validation.check_inputs_shape(sequences.shape)
        if mask is not None and not tree.is_nested(mask):
            _validation.check_mask(
                tuple(mask.shape),
                keras.backend.standardize_dtype(mask.dtype),
                tuple(sequences.shape),
            )
        if initial_state is not None:
            states = list(initial_state) if tree.is_nested(initial_state) else [initial_state]
            _validation.check_initial_state(states, sequences.shape[0], self.units)
        return super().call(
            sequences, mask=mask, training=training, initial_state=initial_state
        )

    def plan(self, sequences, mask=None, training=False, device=None):
        """The `fastlstm.planner.Plan` for calling this layer on `sequences`."""
        module = _kernels.get()
        return planner.decide(
            backend=keras.config.backend(),
            device=device or module.device(),
            activation=planner.activation_name(self.cell.activation),
            recurrent_activation=planner.activation_name(
                self.cell.recurrent_activation
            ),
            use_bias=self.cell.use_bias,
            unroll=self.unroll,
            recurrent_dropout=self.cell.recurrent_dropout,
            use_cudnn=self.use_cudnn,
            mask=_sequence.mask_layout(mask),
            training=bool(training),
            dtype=self.compute_dtype,
            native_status=module.native_status(),
            native_dtypes=module.NATIVE_DTYPES,
        )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if tree.is_nested(mask):
            mask = mask[0]
        module = _kernels.get()
        plan = self.plan(sequences, mask, training)
        cell = self.cell
        dtype = sequences.dtype
        h0, c0 = (ops.cast(s, dtype) for s in initial_state)
        kernel = ops.cast(cell.kernel, dtype)
        recurrent_kernel = ops.cast(cell.recurrent_kernel, dtype)
        bias = None if cell.bias is None else ops.cast(cell.bias, dtype)
        dropout_mask = None
        rec_dropout_mask = None
        if training and 0.0 < cell.dropout < 1.0:
            dropout_mask = cell.get_dropout_mask(sequences[:, 0, :])
        if training and 0.0 < cell.recurrent_dropout < 1.0:
            rec_dropout_mask = cell.get_recurrent_dropout_mask(h0)

        x = sequences
        # Keras's cell uses one input-dropout mask for every step and gate, or
        # four per-gate masks (implementation 1, with recurrent dropout).
        gate_dropout_masks = None
        if isinstance(dropout_mask, (list, tuple)):
            gate_dropout_masks = dropout_mask
        elif dropout_mask is not None:
            x = x * ops.expand_dims(dropout_mask, 1)
        if mask is not None:
            mask = ops.cast(mask, "bool")
        if self.go_backwards:
            x = ops.flip(x, axis=1)
            mask = None if mask is None else ops.flip(mask, axis=1)

        def loop():
            extra = {}
            if module.PROJECT_IN_LOOP and gate_dropout_masks is None:
                # The kernel multiplies each step's input inside the loop
                # (faster there than one large product up front).
                xp = x
                extra["input_kernel"] = (kernel, bias)
            else:
                xp = _sequence.project(x, kernel, bias, gate_dropout_masks)
            return module.recurrence(
                xp,
                h0,
                c0,
                recurrent_kernel,
                mask,
                activation=cell.activation,
                recurrent_activation=cell.recurrent_activation,
                zero_output_for_mask=self.zero_output_for_mask,
                return_sequences=self.return_sequences,
                unroll=plan.kernel == "unrolled",
                rec_masks=rec_dropout_mask,
                **extra,
            )

        def fused():
            # The plan's kernel, by name: module.cudnn or module.native.
            return self._fused(
                getattr(module, plan.kernel), x, h0, c0, kernel, recurrent_kernel,
                bias, mask, plan.mask,
            )

        def tensors(kernel_fn):
            # Both branches of a cond must return tensors of one structure.
            last, outputs, h, c = kernel_fn()
            if outputs is None:
                outputs = ops.expand_dims(last, 1)
            return last, outputs, h, c

        if plan.kernel not in ("cudnn", "native") or gate_dropout_masks is not None:
            last, outputs, h, c = tensors(loop)
        elif plan.mask == _sequence.RUNTIME:
            # A traced mask: the layout is known inside the graph only.
            last, outputs, h, c = ops.cond(
                _sequence.is_contiguous(mask),
                lambda: tensors(fused),
                lambda: tensors(loop),
            )
        else:
            last, outputs, h, c = tensors(fused)
        return last, outputs, [h, c]

    def _fused(self, run, x, h0, c0, kernel, recurrent_kernel, bias, mask, layout):
        if layout in (_sequence.NO_MASK, _sequence.ALL_VALID):
            y, h, c = run(x, h0, c0, kernel, recurrent_kernel, bias, None)
            return h, (y if self.return_sequences else None), h, c
        starts, lengths = _sequence.valid_span(mask)
        # `layout` describes the mask as given; `mask` is in processing order.
        front_aligned = _sequence.LEFT_PADDED if self.go_backwards else _sequence.RIGHT_PADDED
        if layout != front_aligned:
            x = _sequence.rotate_to_front(x, starts)
        # The final c is observable only as a returned or carried state.
        need_c = self.return_state or self.stateful
        y, h, c = run(
            x, h0, c0, kernel, recurrent_kernel, bias, lengths, need_cell_state=need_c
        )
        nonempty = ops.expand_dims(lengths > 0, 1)
        h = ops.where(nonempty, h, h0)
        # A kernel may skip computing a c nobody reads; RNN.call still casts it.
        c = ops.zeros_like(c0) if c is None else ops.where(nonempty, c, c0)
        # The last output is the last valid step's, i.e. the final h, or zeros
        # for an empty row (and for a masked last step with zero outputs).
        keep_last = nonempty
        if self.zero_output_for_mask:
            keep_last = ops.logical_and(keep_last, mask[:, -1:])
        last = ops.where(keep_last, h, ops.zeros_like(h))
        outputs = None
        if self.return_sequences:
            outputs = _sequence.restore_outputs(
                y, starts, lengths, self.zero_output_for_mask
            )
        return last, outputs, h, c

    def get_config(self):
        config = super().get_config()
        config["use_cudnn"] = self.use_cudnn
        return config
