"""Which parameters each image model takes, from OpenAI's image API reference.

The models a team can use come from its providers; this only says what the form may
send to a model. A model not listed here (Stable Diffusion behind LocalAI, say) gets the
plain options every OpenAI-compatible image server understands (prompt, n, size), and
the page says why the other controls are off.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

GENERATE, EDIT, VARIATION = "generate", "edit", "variation"
MB = 1024 * 1024


@dataclass(frozen=True)
class ImageModelOptions:
    family: str
    sizes: tuple[str, ...]
    qualities: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()
    backgrounds: tuple[str, ...] = ()
    max_n: int = 10
    max_prompt: int = 32_000
    operations: frozenset[str] = field(default_factory=lambda: frozenset({GENERATE}))
    # gpt-image-1 always answers with base64 and refuses `response_format`.
    sends_response_format: bool = True
    max_upload_bytes: int = 50 * MB
    # dall-e-2 edits and variations take square PNGs only.
    square_png_only: bool = False
    # Its edits need a mask or a transparent image: it paints where the image is clear.
    edit_needs_transparency: bool = False

    def reason_missing(self, name: str, model: str) -> str:
        """Why a control is off for this model (shown next to it)."""
        if name == "n" and self.max_n == 1:
            return f"{model} makes one image per request."
        return f"{model} has no {name} setting." if self.family != "other" else \
            f"{model} is not a model Playground knows, so only prompt, n and size are sent."

    def for_page(self, model: str) -> dict:
        """What static/js/images.js needs to switch controls on and off."""
        data = asdict(self)
        data["operations"] = sorted(self.operations)
        data["reasons"] = {name: self.reason_missing(name, model) for name in ("quality", "style", "background", "n")}
        return data


KNOWN: dict[str, ImageModelOptions] = {
    "dall-e-2": ImageModelOptions(
        family="dall-e-2", sizes=("256x256", "512x512", "1024x1024"), max_n=10, max_prompt=1_000,
        operations=frozenset({GENERATE, EDIT, VARIATION}), max_upload_bytes=4 * MB,
        square_png_only=True, edit_needs_transparency=True,
    ),
    "dall-e-3": ImageModelOptions(
        family="dall-e-3", sizes=("1024x1024", "1792x1024", "1024x1792"), qualities=("standard", "hd"),
        styles=("vivid", "natural"), max_n=1, max_prompt=4_000,
    ),
    "gpt-image-1": ImageModelOptions(
        family="gpt-image-1", sizes=("auto", "1024x1024", "1536x1024", "1024x1536"),
        qualities=("auto", "high", "medium", "low"), backgrounds=("auto", "transparent", "opaque"), max_n=10,
        operations=frozenset({GENERATE, EDIT}), sends_response_format=False, max_upload_bytes=50 * MB,
    ),
}

OTHER = ImageModelOptions(
    family="other", sizes=("256x256", "512x512", "1024x1024"), max_n=10,
    operations=frozenset({GENERATE, EDIT, VARIATION}), max_upload_bytes=50 * MB,
)


def options_for(model: str) -> ImageModelOptions:
    """By longest prefix, so "gpt-image-1-mini" and dated snapshots find their family."""
    base = model.rsplit("/", 1)[-1]
    best = None
    for key in KNOWN:
        if (base == key or base.startswith(key + "-")) and (best is None or len(key) > len(best)):
            best = key
    return KNOWN[best] if best else OTHER


CAPABILITY_FOR = {GENERATE: "image", EDIT: "image_edit", VARIATION: "image_variation"}
