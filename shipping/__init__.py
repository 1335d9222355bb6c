"""Trained agents that ship with the repository (pretrained.py is their command line), one folder per environment,
laid out as the scripts' own folders so that every loader is the usual one:

    pretrained/<env>/vae/<env>.npz                  V as NumPy arrays (what rollout workers read), float32
    pretrained/<env>/rnn/<env>.npz                  M, likewise
    pretrained/<env>/controller/<env>.best.json     C: [params, score, {"env", "exp_mode"}] as 05 writes it
    pretrained/<env>/data/rnn_initial_<env>_0.npy   first-frame mu and logvar of recorded episodes (the dream starts
                                                    from them: model.py --dream_mode)
    pretrained/<env>/README.md                      the model card, written from the manifest (shipping.card)
    pretrained/<env>/manifest.json                  the 100-episode score (mean, std, first seed, episodes, every
                                                    episode's score), short episodes a test replays ("check"), the
                                                    commands that made the files, the date, each file's sha256

    shipping.manifest   where they live, the files each ships, verify (a manifest against itself and the files)
    shipping.pack       pack (a trained agent into root/<env>/), replay_check and play_check (its check episodes)
    shipping.card       model_card and write_model_card
    shipping.agents     load_agent (the agent as a Python object) and use_pretrained (model.py --pretrained)
    shipping.videos     play (make play: a video of each shipped agent in its game and its dream) and save_still

`pretrained/` itself is data, not code: the files are NumPy arrays read with allow_pickle=False and JSON, and loading
them runs no code. Nothing in this package loads NumPy at import.
"""
