def shout(name):
    return f"HELLO, {name.upper()}!"
