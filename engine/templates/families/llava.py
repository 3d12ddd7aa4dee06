"""LLaVA (the LLaVA team's models as llava-hf converted them): LLaVA-1.5 and LLaVA-NeXT read images, each in the text
layout of the language model it was built on (Vicuna, Mistral, Llama 3, Yi, Qwen), as LLaMA-Factory pairs them.
"""

from engine.templates.families import chinese, generic, llama, mistral, qwen  # noqa: F401  (layouts reused)
from engine.templates.template import register_media_variant

register_media_variant("llava", "vicuna", mm_plugin="llava", replace_jinja_template=False,
                       description="LLaVA-1.5 (Vicuna 'USER: … ASSISTANT:') with images")
register_media_variant("llava_next", "vicuna", mm_plugin="llava_next", replace_jinja_template=False,
                       description="LLaVA-NeXT on Vicuna ('USER: … ASSISTANT:') with images")
register_media_variant("llava_next_mistral", "mistral", mm_plugin="llava_next",
                       description="LLaVA-NeXT on Mistral ([INST] … [/INST]) with images")
register_media_variant("llava_next_llama3", "llama3", mm_plugin="llava_next",
                       description="LLaVA-NeXT on Llama 3 (header ids) with images")
register_media_variant("llava_next_qwen", "qwen2_vl", mm_plugin="llava_next",
                       description="LLaVA-NeXT on Qwen (ChatML, <tool_call> tools) with images")

register_media_variant("llava_next_yi", "yi", mm_plugin="llava_next",
                       description="LLaVA-NeXT on Yi (ChatML) with images")
