"""Build a tiny random-weight Llama and its tokenizer, offline, for tests against real vLLM.

    python tests/vllm/tiny_model.py OUT_DIR

No model hub is reachable from CI, so the tests make their own model: two
layers, hidden size 128, a byte-level BPE tokenizer of 2,048 tokens trained on
this repository's text, and a ChatML chat template. It answers gibberish, but
vLLM serves it through exactly the code paths a real model uses: the
scheduler, the KV cache, streaming, usage, aborts. Needs transformers,
tokenizers and torch (the vLLM environment has them).
"""

from __future__ import annotations

import sys
from pathlib import Path

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{{ message['content'] if message['content'] is string else '' }}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def corpus(root: Path) -> list[str]:
    texts = []
    for pattern in ("*.md", "gateway/**/*.py", "providers/*.yaml", "docs/*.md"):
        texts += [p.read_text(errors="replace") for p in sorted(root.glob(pattern))]
    return texts or ["hello world " * 100]


def build(out: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2048, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(Path(__file__).resolve().parents[2]), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>",
                                   eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token="<|endoftext|>")
    fast.chat_template = CHATML
    fast.save_pretrained(out)

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32768,
        bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id, tie_word_embeddings=True, torch_dtype="float32")
    LlamaForCausalLM(config).to(torch.float32).save_pretrained(out)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(build(Path(sys.argv[1])))
