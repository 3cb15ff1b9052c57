"""overmix.sims: Numba simulations of the idealised attention stack of MODEL.md."""

from .config import StackConfig
from .params import Params, init_params, param_shapes
from .stack import Trace, forward
from .jacobian import VJP, vjp, last_token_jacobian, sensitivity, perturbation_spread
from .precision import round_to, UNIT_ROUNDOFF
from .positions import rope_thetas, alibi_slopes, sinusoidal_table
from .attention import attention_logits, attention_weights
from .batch import (BatchTrace, batch_forward, batch_last_token_jacobian, batch_sensitivity,
                    params_for_seeds, SavedBatch, Workspace, batch_forward_saved,
                    batch_backward)

__all__ = [
    "StackConfig", "Params", "init_params", "param_shapes", "Trace", "forward", "VJP", "vjp",
    "last_token_jacobian", "sensitivity", "perturbation_spread", "round_to", "UNIT_ROUNDOFF",
    "rope_thetas", "alibi_slopes", "sinusoidal_table", "attention_logits", "attention_weights",
    "BatchTrace", "batch_forward", "batch_last_token_jacobian", "batch_sensitivity", "params_for_seeds",
    "SavedBatch", "Workspace", "batch_forward_saved", "batch_backward",
]

# adapters from a stack to the inputs of the section-A bounds, and the A10 if-else head
from .adapters import (value_output_norms, mlp_lipschitz, activation_lipschitz,
                       path_bound_inputs, IfElseHead, ifelse_head)
# section-B simulations: representational and rank collapse, precision, the sphere
from .collapse_sims import (repeat_last, repeat_last_distance, repeat_last_curve, RepeatIdentity,
                            one_layer_repeat_identity, PrecisionThreshold, precision_threshold,
                            san_config, ExponentFit, rank_collapse_exponent, MaskedCollapse,
                            masked_collapse, sphere_dynamics, sphere_inner_products,
                            SPHERE_SCHEMES)

__all__ += [
    "value_output_norms", "mlp_lipschitz", "activation_lipschitz", "path_bound_inputs",
    "IfElseHead", "ifelse_head", "repeat_last", "repeat_last_distance", "repeat_last_curve",
    "RepeatIdentity", "one_layer_repeat_identity", "PrecisionThreshold", "precision_threshold",
    "san_config", "ExponentFit", "rank_collapse_exponent", "MaskedCollapse", "masked_collapse",
    "sphere_dynamics", "sphere_inner_products", "SPHERE_SCHEMES",
]

# small language models trained on CPU (THEORY.md A8's sink metric over training)
# (the training loop stays overmix.sims.train.train: re-exporting it would hide the module)
from .train import (LMConfig, LMParams, TrainConfig, init_lm, loss, loss_and_grad,
                    load_checkpoint, TrainingDiverged, History)
from .data import (bigram_backcopy_task, sample_bigram_backcopy, trigger_mask,
                   packed_documents_task, sample_packed_documents)

__all__ += [
    "LMConfig", "LMParams", "TrainConfig", "init_lm", "loss", "loss_and_grad",
    "load_checkpoint", "TrainingDiverged", "History", "bigram_backcopy_task",
    "sample_bigram_backcopy", "trigger_mask", "packed_documents_task", "sample_packed_documents",
]
