"""Training loops: the fine-tuned encoder baseline (``encoder``) and LoRA finetuning of a causal LM
(``lora``). They sit above estimators (the encoder estimator loads what ``encoder`` trains) and
below the workflows and the command line that call them."""
