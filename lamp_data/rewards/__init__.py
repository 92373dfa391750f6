"""What a frame is scored against, and by what: prompt sets (:mod:`.prompts`), sentence encoders
(:mod:`.text`), frozen vision-language reward models (:mod:`.vlm`) and the training of in-domain
reward models (:mod:`.training`). Nothing here reads or writes a dataset except reward-model
training, which reads the store."""
