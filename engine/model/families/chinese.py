"""Models of Chinese labs: DeepSeek, Zhipu GLM-4, 01.AI Yi, Baichuan 2 and InternLM 2.5 / 3."""

from engine.model.families.registry import register_model

_HUGE = "671B-parameter mixture of experts: needs a multi-GPU cluster."
register_model("DeepSeek-V3", hf="deepseek-ai/DeepSeek-V3", ms="deepseek-ai/DeepSeek-V3", template="deepseek3",
               family="deepseek", notes=_HUGE, params=671)
register_model("DeepSeek-R1", hf="deepseek-ai/DeepSeek-R1", ms="deepseek-ai/DeepSeek-R1", template="deepseek3",
               family="deepseek", notes=f"Reasoning model. {_HUGE}", params=671)
# The distills keep Qwen's or Llama's weights but ship DeepSeek's tokenizer chat format (<｜User｜>/<｜Assistant｜>).
for base, size in (("Qwen", "1.5B"), ("Qwen", "7B"), ("Llama", "8B"), ("Qwen", "14B"), ("Qwen", "32B"),
                   ("Llama", "70B")):
    repo = f"deepseek-ai/DeepSeek-R1-Distill-{base}-{size}"
    register_model(f"DeepSeek-R1-Distill-{base}-{size}", hf=repo, ms=repo, template="deepseek3", family="deepseek",
                   notes=f"Reasoning model distilled into {base} {size}; it thinks in <think> blocks.", params=size)
register_model("DeepSeek-LLM-7B-Chat", hf="deepseek-ai/deepseek-llm-7b-chat", ms="deepseek-ai/deepseek-llm-7b-chat",
               template="deepseek", family="deepseek", params="7B")

register_model("GLM-4-9B-0414", hf="THUDM/GLM-4-9B-0414", ms="ZhipuAI/GLM-4-9B-0414", template="glm4", family="glm", params="9B")
register_model("GLM-4-32B-0414", hf="THUDM/GLM-4-32B-0414", ms="ZhipuAI/GLM-4-32B-0414", template="glm4",
               family="glm", params="32B")
register_model("GLM-4-9B-Chat", hf="THUDM/glm-4-9b-chat-hf", ms="ZhipuAI/glm-4-9b-chat-hf", template="glm4",
               family="glm", params="9B")

for size in ("6B", "9B", "34B"):
    register_model(f"Yi-1.5-{size}-Chat", hf=f"01-ai/Yi-1.5-{size}-Chat", ms=f"01ai/Yi-1.5-{size}-Chat",
                   template="yi", family="yi", params=size)

_REMOTE_CODE = "Runs its own modelling code: set trust_remote_code."
for size in ("7B", "13B"):
    register_model(f"Baichuan2-{size}-Chat", hf=f"baichuan-inc/Baichuan2-{size}-Chat",
                   ms=f"baichuan-inc/Baichuan2-{size}-Chat", template="baichuan2", family="baichuan",
                   notes=_REMOTE_CODE, params=size)

for size, repo in (("1.8B", "internlm2_5-1_8b-chat"), ("7B", "internlm2_5-7b-chat"), ("20B", "internlm2_5-20b-chat")):
    register_model(f"InternLM2.5-{size}-Chat", hf=f"internlm/{repo}", ms=f"Shanghai_AI_Laboratory/{repo}",
                   template="intern2", family="internlm", notes=_REMOTE_CODE, params=size)
register_model("InternLM3-8B-Instruct", hf="internlm/internlm3-8b-instruct",
               ms="Shanghai_AI_Laboratory/internlm3-8b-instruct", template="intern2", family="internlm",
               notes=_REMOTE_CODE, params="8B")
