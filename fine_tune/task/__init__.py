"""The task contract: prompt, strict parser, rewards and per-sample scores."""
