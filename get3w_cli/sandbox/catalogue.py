"""The sandbox's fixed, small model catalogue for each of the three APIs, with input schemas.

Get3W v3's list comes in two shapes (``SandboxOptions.models_shape``): ``wavespeed`` (the
default: ``model_id``, ``base_price`` and the input schema in ``api_schema.api_schemas[]``, as
WaveSpeed documents its list) or ``get3w`` (``id``, ``price``, no schema). Every schema lists the
``sandbox_*`` controls too: the sandbox's models do take them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from get3w_cli.constants import SANDBOX_VIDEO_DURATION_FACTOR

WAVESPEED_SHAPE, GET3W_SHAPE = "wavespeed", "get3w"
MODEL_LIST_SHAPES = (WAVESPEED_SHAPE, GET3W_SHAPE)
# The per-task controls (see the package docstring), as schema properties.
CONTROLS: dict[str, Any] = {
    "sandbox_duration": {"type": "number", "description": "sandbox: seconds the task runs"},
    "sandbox_fail": {"type": ["boolean", "string"], "description": "sandbox: end failed (with this message)"},
    "sandbox_outputs": {"type": "integer", "description": "sandbox: number of outputs"},
    "sandbox_output_bytes": {"type": "integer", "description": "sandbox: pad each PNG to about this size"},
    "sandbox_webhook": {"type": "string", "enum": ["drop", "early", "late_processing"],
                        "description": "sandbox: webhook delivery quirk"},
    "sandbox_stream": {"type": "string", "enum": ["get3w", "wavespeed", "no_id", "break", "break_before_id",
                                                  "refuse", "ignore"],
                       "description": "sandbox: how a stream: true submit answers"},
}


@dataclass(frozen=True)
class Model:
    id: str
    name: str
    kind: str  # the task type (Get3W "type", Abstrakt "category")
    description: str
    price: float  # USD per run (Get3W)
    credits: int = 1  # credits per run (Abstrakt)
    provider: str = "get3w"

    @property
    def is_video(self) -> bool:
        return "video" in self.kind

    @property
    def duration_factor(self) -> float:
        return SANDBOX_VIDEO_DURATION_FACTOR if self.is_video else 1.0

    def get3w_listing(self, shape: str = "get3w") -> dict[str, Any]:
        if shape == WAVESPEED_SHAPE:
            run = {"type": "model_run", "method": "POST", "api_path": f"/api/v3/{self.id}",
                   "request_schema": self.get3w_schema()}
            return {"model_id": self.id, "name": self.name, "base_price": self.price,
                    "description": self.description, "type": self.kind, "api_schema": {"api_schemas": [run]}}
        return {
            "id": self.id,
            "name": self.name,
            "type": self.kind,
            "description": self.description,
            "price": self.price,
        }

    def get3w_schema(self) -> dict[str, Any]:
        """The request schema of a Get3W model (api/get3w.md 4.3's common fields)."""
        properties: dict[str, Any] = {
            "prompt": {"type": "string", "description": "Text description of what to generate"},
            "width": {"type": "integer", "default": 1024, "minimum": 256, "maximum": 2048},
            "height": {"type": "integer", "default": 1024, "minimum": 256, "maximum": 2048},
            "seed": {"type": "integer", "default": -1, "description": "Random seed (-1: random)"},
        }
        if "image-to" in self.kind:
            properties["image_url"] = {"type": "string", "format": "uri", "description": "The input image"}
        return {"type": "object", "properties": {**properties, **CONTROLS}, "required": ["prompt"]}

    def abstrakt_listing(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "category": self.kind,
            "provider": self.provider,
            "status": "active",
            "pricing": {"credits_per_run": self.credits},
        }

    def abstrakt_details(self) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "prompt": {"type": "string", "description": "What to generate"},
            "image_size": {
                "type": "string",
                "enum": ["square", "square_hd", "portrait_4_3", "landscape_16_9"],
                "default": "square_hd",
            },
            "num_images": {"type": "integer", "minimum": 1, "maximum": 4, "default": 1},
        }
        if self.kind == "image-to-image":
            properties["image_url"] = {"type": "string", "format": "uri"}
        schema = {"type": "object", "properties": {**properties, **CONTROLS}, "required": ["prompt"]}
        return {**self.abstrakt_listing(), "input_schema": schema}


def _index(*models: Model) -> dict[str, Model]:
    return {m.id: m for m in models}


GET3W_V3_MODELS = _index(
    Model("get3w/flux-dev", "FLUX.1 [dev]", "text-to-image",
          "12B text-to-image model, high quality.", 0.025),
    Model("get3w/flux-schnell", "FLUX.1 [schnell]", "text-to-image",
          "Fast 4-step text-to-image model.", 0.003),
    Model("get3w/wan-2.1-i2v-720p", "Wan 2.1 image-to-video 720p", "image-to-video",
          "Animates an input image into a 5 s 720p clip.", 0.3),
    # A WaveSpeed-style id with three segments: a v3 model only under --api v3.
    Model("wavespeed-ai/z-image/turbo", "Z-Image Turbo", "text-to-image",
          "Fast text-to-image model, WaveSpeed-style id.", 0.005),
)

GET3W_V1_MODELS = _index(
    Model("google/nano-banana-pro/text-to-image", "Nano Banana Pro", "text-to-image",
          "Google's image model, text to image.", 0.139),
    Model("google/nano-banana-pro/edit", "Nano Banana Pro Edit", "image-to-image",
          "Google's image model, edits an input image.", 0.139),
    Model("bytedance/seedance/text-to-video", "Seedance", "text-to-video",
          "ByteDance text-to-video model.", 0.25),
)

ABSTRAKT_MODELS = _index(
    Model("flux-schnell", "FLUX Schnell", "text-to-image",
          "Fast text-to-image generation.", 0.0, 1, "fal-ai"),
    Model("nano-banana-pro-edit", "Nano Banana Pro Edit", "image-to-image",
          "Edit an image with a text instruction.", 0.0, 4, "google"),
    Model("fal-ai/flux/schnell", "FLUX Schnell", "text-to-image",
          "FLUX.1 [schnell], 1-4 step text-to-image.", 0.0, 1, "fal-ai"),
    Model("fal-ai/flux/dev", "FLUX Dev", "text-to-image",
          "FLUX.1 [dev], high quality text-to-image.", 0.0, 3, "fal-ai"),
)


def matches(model: Model, search: str | None, category: str | None = None) -> bool:
    """Whether a model passes a ``search`` (name, id or description) and ``category`` filter."""
    if category and model.kind != category:
        return False
    if not search:
        return True
    needle = search.lower()
    return any(needle in text.lower() for text in (model.id, model.name, model.description))
