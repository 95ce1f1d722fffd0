"""nadkit: Neural Architecture Disentanglement (Hu et al., ICCV 2021) for PyTorch networks."""

from .version import __version__

from .data import fashion_mnist, load_split, mosaics
from .disentangle import NAD
from .settings import Convergence, Engine, Method
from .errors import NadkitError
from .networks import build_network, load_network
from .points import MaskPoint, MaskPoints, mask_points, masked
from .results import Ablation, Accuracy, Evaluation, HitRate, Measure, PointAblation, Similarity
from .subarch import SubArchitectures

__all__ = ["NAD", "Convergence", "Engine", "Method", "Ablation", "Accuracy", "Evaluation", "MaskPoint", "MaskPoints", "Measure", "NadkitError", "PointAblation", "Similarity", "HitRate",
           "SubArchitectures", "build_network", "fashion_mnist", "load_network", "load_split", "mask_points",
           "masked", "mosaics"]
