"""IBM Granite: Granite 4.0 (`granite4`; the H models mix Mamba-2 and attention layers), Granite 3.x (`granite3`)
and Granite Vision (`granite3_vision`, reads images). IBM publishes under `ibm-granite/` (Apache-2.0); ModelScope
mirrors Granite 3 under `AI-ModelScope/`."""

from engine.model.families.registry import moe_note, register_family, register_model

register_family("granite", "Granite")

for name, size, notes in (("h-small", 32, moe_note("32B", "9B")), ("h-tiny", 7, moe_note("7B", "1B")),
                          ("h-micro", 3, ""), ("micro", 3, "")):
    register_model(f"Granite-4.0-{name.title()}", hf=f"ibm-granite/granite-4.0-{name}", template="granite4",
                   family="granite", notes=notes, params=size)
register_model("Granite-4.0-Tiny-Preview", hf="ibm-granite/granite-4.0-tiny-preview",
               ms="ibm-granite/granite-4.0-tiny-preview", template="granite4", family="granite",
               notes=f"Preview release. {moe_note('7B', '1B')}", params=7)

for version in ("3.3", "3.2", "3.1"):
    for size in ("8b", "2b"):
        register_model(f"Granite-{version}-{size.upper()}-Instruct", hf=f"ibm-granite/granite-{version}-{size}-instruct",
                       ms=f"AI-ModelScope/granite-{version}-{size}-instruct", template="granite3", family="granite",
                       params=size)

register_model("Granite-Vision-3.2-2B", hf="ibm-granite/granite-vision-3.2-2b",
               ms="AI-ModelScope/granite-vision-3.2-2b", template="granite3_vision", family="granite",
               params="3B",  # a 2B language model and its vision encoder
               notes="Reads images (a LLaVA-NeXT model); the vision encoder stays fixed unless freeze_vision_tower "
                     "is off.")
