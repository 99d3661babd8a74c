"""The Telegram bot and the torch-free predictor: the serving side of doggo-recog.

`bot.imaging` and `bot.breeds` are the contract shared with the pipeline: the pipeline imports
them, so training, evaluation and serving decode photos and name breeds the same way.
"""
