//! Text and image encoders (candle BERT/CLIP, tokenizers, image preprocessing), independent of Postgres.
