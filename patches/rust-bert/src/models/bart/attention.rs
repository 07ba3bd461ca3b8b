// Copyright 2020 The Facebook AI Research Team Authors
// Copyright 2020-present, the HuggingFace Inc. team.
// Copyright 2020 Guillaume Becquin
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//     http://www.apache.org/licenses/LICENSE-2.0
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

use crate::common::dropout::Dropout;
use std::borrow::Borrow;
use tch::{nn, Tensor};

#[derive(Debug)]
/// # Cache for BART attention layers
/// Stores the cached value of key, value and key padding mask to avoid recalculation (e.g. at each generation step)
pub struct LayerState {
    /// Cached keys
    pub prev_key: Tensor,
    /// Cached values
    pub prev_value: Tensor,
}

impl Clone for LayerState {
    fn clone(&self) -> Self {
        LayerState {
            prev_key: self.prev_key.copy(),
            prev_value: self.prev_value.copy(),
        }
    }
}

impl LayerState {
    pub(crate) fn reorder_cache(&mut self, new_indices: &Tensor) {
        self.prev_key = self.prev_key.index_select(0, new_indices);
        self.prev_value = self.prev_value.index_select(0, new_indices);
    }
}

#[derive(Debug)]
pub struct BartAttention {
    num_heads: i64,
    head_dim: i64,
    dropout: Dropout,
    scaling: f64,
    encoder_decoder_attention: bool,
    output_attentions: bool,
    k_proj: nn::Linear,
    v_proj: nn::Linear,
    q_proj: nn::Linear,
    out_proj: nn::Linear,
    store_cache: bool,
}

impl BartAttention {
    pub fn new<'p, P>(
        p: P,
        embed_dim: i64,
        num_heads: i64,
        dropout: f64,
        encoder_decoder_attention: bool,
        store_cache: bool,
        output_attentions: bool,
    ) -> BartAttention
    where
        P: Borrow<nn::Path<'p>>,
    {
        let p = p.borrow();

        let k_proj = nn::linear(p / "k_proj", embed_dim, embed_dim, Default::default());
        let v_proj = nn::linear(p / "v_proj", embed_dim, embed_dim, Default::default());
        let q_proj = nn::linear(p / "q_proj", embed_dim, embed_dim, Default::default());
        let out_proj = nn::linear(p / "out_proj", embed_dim, embed_dim, Default::default());

        let head_dim = embed_dim / num_heads;
        let scaling = (head_dim as f64).powf(-0.5);
        let dropout = Dropout::new(dropout);

        BartAttention {
            num_heads,
            head_dim,
            dropout,
            scaling,
            encoder_decoder_attention,
            output_attentions,
            k_proj,
            v_proj,
            q_proj,
            out_proj,
            store_cache,
        }
    }

    fn _shape(&self, x: Tensor, sequence_length: i64, batch_size: i64) -> Tensor {
        x.view((batch_size, sequence_length, self.num_heads, self.head_dim))
            .transpose(1, 2)
            .contiguous()
    }

    /// gist patch (PATCH.md): cross-attention of `beams` consecutive query rows per input
    /// to one set of keys and values per input (`[inputs, heads, source, head_dim]`): the
    /// beams become query positions of their input, so each step reads the keys and values
    /// once per input instead of once per beam. The products are the same dot products
    /// of the same rows as the per-beam path; the mask still has one row per beam.
    fn attend_per_input(
        &self,
        query_states: Tensor,
        key_states: &Tensor,
        value_states: &Tensor,
        attention_mask: Option<&Tensor>,
        beams: i64,
        train: bool,
    ) -> (Tensor, Option<Tensor>) {
        let (bs, target_length, embed_dim) = query_states.size3().unwrap();
        let inputs = bs / beams;
        let source_length = key_states.size()[2];
        let query_states = query_states
            .view([inputs, beams * target_length, self.num_heads, self.head_dim])
            .transpose(1, 2);
        let mut attention_weights = query_states.matmul(&key_states.transpose(-1, -2));
        if let Some(attention_mask_value) = attention_mask {
            attention_weights = attention_weights
                + attention_mask_value.reshape([inputs, 1, beams * target_length, source_length]);
        };
        attention_weights = attention_weights.softmax(-1, attention_weights.kind());
        let saved_attention_weights = if self.output_attentions {
            Some(
                attention_weights
                    .view([inputs, self.num_heads, beams, target_length, source_length])
                    .transpose(1, 2)
                    .reshape([bs, self.num_heads, target_length, source_length]),
            )
        } else {
            None
        };
        let attention_output = attention_weights
            .apply_t(&self.dropout, train)
            .matmul(value_states)
            .transpose(1, 2)
            .reshape([bs, target_length, embed_dim])
            .apply(&self.out_proj);
        (attention_output, saved_attention_weights)
    }

    pub fn forward_t(
        &self,
        hidden_states: &Tensor,
        key_value_states: Option<&Tensor>,
        attention_mask: Option<&Tensor>,
        layer_state: Option<LayerState>,
        train: bool,
    ) -> (Tensor, Option<Tensor>, Option<LayerState>) {
        let (bs, target_length, embed_dim) = hidden_states.size3().unwrap();

        let query_states = hidden_states.apply(&self.q_proj) * self.scaling;

        let (key_states, value_states) = if self.encoder_decoder_attention {
            if let Some(layer_state_value) = layer_state {
                (layer_state_value.prev_key, layer_state_value.prev_value)
            } else {
                // gist patch (PATCH.md): in beam search the encoder outputs come once per
                // input (`encoder_outputs_per_input`); their keys and values are projected,
                // cached and attended to once per input (`attend_per_input`), instead of
                // once per beam.
                let key_value_states = key_value_states.unwrap();
                let source_bs = key_value_states.size()[0];
                (
                    self._shape(key_value_states.apply(&self.k_proj), -1, source_bs),
                    self._shape(key_value_states.apply(&self.v_proj), -1, source_bs),
                )
            }
        } else if let Some(layer_state_value) = layer_state {
            let key_states = self._shape(hidden_states.apply(&self.k_proj), -1, bs);
            let value_states = self._shape(hidden_states.apply(&self.v_proj), -1, bs);
            (
                Tensor::cat(&[layer_state_value.prev_key, key_states], 2),
                Tensor::cat(&[layer_state_value.prev_value, value_states], 2),
            )
        } else {
            (
                self._shape(hidden_states.apply(&self.k_proj), -1, bs),
                self._shape(hidden_states.apply(&self.v_proj), -1, bs),
            )
        };

        // gist patch (PATCH.md): the cache shares the key and value tensors instead of
        // copying them. Nothing writes to them in place, and the cross-attention ones
        // (the whole encoder length) were copied at every step.
        let new_layer_state = if self.store_cache {
            Some(LayerState {
                prev_key: key_states.shallow_clone(),
                prev_value: value_states.shallow_clone(),
            })
        } else {
            None
        };

        let source_bs = key_states.size()[0];
        if source_bs != bs {
            let attention = self.attend_per_input(
                query_states,
                &key_states,
                &value_states,
                attention_mask,
                bs / source_bs,
                train,
            );
            return (attention.0, attention.1, new_layer_state);
        }

        // gist patch (PATCH.md): attention over a whole sequence (the encoder's, or a
        // decoder without cache) runs as libtorch's fused `scaled_dot_product_attention`, as
        // transformers' BartSdpaAttention does: the query is already scaled, so the scale is
        // 1, and the mask is added inside the kernel instead of in a pass of its own.
        if let (Some(mask), false, false, true) = (
            attention_mask,
            self.output_attentions,
            train,
            target_length > 1,
        ) {
            let query_states = self._shape(query_states, target_length, bs);
            let attention_output = Tensor::scaled_dot_product_attention(
                &query_states,
                &key_states,
                &value_states,
                Some(mask),
                0.0,
                false,
                1.0,
            )
            .transpose(1, 2)
            .reshape([bs, target_length, embed_dim])
            .apply(&self.out_proj);
            return (attention_output, None, new_layer_state);
        }

        let proj_shape = [bs * self.num_heads, -1, self.head_dim];
        let query_states = self
            ._shape(query_states, target_length, bs)
            .view(proj_shape);
        let key_states = key_states.view(proj_shape);
        let value_states = value_states.view(proj_shape);

        let source_length = key_states.size()[1];
        let mut attention_weights = query_states.bmm(&key_states.transpose(1, 2));

        if let Some(attention_mask_value) = attention_mask {
            attention_weights =
                attention_weights.view([bs, self.num_heads, target_length, source_length])
                    + attention_mask_value;
            attention_weights =
                attention_weights.view([bs * self.num_heads, target_length, source_length]);
        };

        attention_weights = attention_weights.softmax(-1, attention_weights.kind());

        let saved_attention_weights = if self.output_attentions {
            Some(attention_weights.view((bs, self.num_heads, target_length, source_length)))
        } else {
            None
        };

        let attention_probas = attention_weights.apply_t(&self.dropout, train);
        let attention_output = attention_probas
            .bmm(&value_states)
            .view([bs, self.num_heads, target_length, self.head_dim])
            .transpose(1, 2)
            .reshape([bs, target_length, embed_dim])
            .apply(&self.out_proj);

        (attention_output, saved_attention_weights, new_layer_state)
    }
}
