from magnus import track_this


def measure(seed: int):
    track_this(accuracy=seed / 10, rounds=seed)
