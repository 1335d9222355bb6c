# Two commands on a fresh machine: `make demo` (the whole pipeline at a tiny size) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= demo

.PHONY: venv test test-fast demo bench clean-demo play

# The pinned dependencies, then the project itself in editable mode (pyproject.toml): its modules import from
# anywhere, and edits take effect without reinstalling.
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest -q tests

# The tests marked slow left out (MPI launches, the scripts as subprocesses, long episodes and training): under a
# minute on two idle cores, for the edit-test loop; `make test` still runs everything.
test-fast: venv
	$(PY) -m pytest -q -m "not slow" tests

# An MP4 of every shipped agent (pretrained/), in its game and in its dream, in ./video: no training needed.
play: venv
	$(PY) pretrained.py play

# The tiny preset: every stage runs for seconds to a few minutes on two cores, in ./$(DEMO_DIR) (started afresh
# each time) so that real data in ./data, ./vae, ./rnn and ./controller is never touched.
DEMO_RUN := --num_worker 2 --num_worker_trial 2 --num_episode 1 --max_length 100 --eval_steps 1 --generations 2
demo: venv clean-demo
	mkdir -p $(DEMO_DIR)
	cd $(DEMO_DIR) && ../$(PY) ../01_generate_data.py car_racing --total_episodes 8 --batch_size 4 --time_steps 60
	cd $(DEMO_DIR) && ../$(PY) ../02_train_vae.py --start_batch 0 --max_batch 1 --new_model --epochs 2 --verbose 2
	cd $(DEMO_DIR) && ../$(PY) ../03_generate_rnn_data.py --start_batch 0 --max_batch 1
	cd $(DEMO_DIR) && ../$(PY) ../04_train_rnn.py --start_batch 0 --max_batch 1 --new_model --epochs 3 --verbose 2
	cd $(DEMO_DIR) && ../$(PY) ../05_train_controller.py car_racing $(DEMO_RUN)
	cd $(DEMO_DIR) && ../$(PY) ../model.py car_racing --filename ./controller/car_racing.cma.1.4.best.json \
		--record_video --max_length 300
	@echo "== a tiny Doom pass: the controller learns inside the dream, then plays the real game"
	cd $(DEMO_DIR) && ../$(PY) ../01_generate_data.py doom_take_cover --total_episodes 4 --batch_size 4 --time_steps 500
	cd $(DEMO_DIR) && ../$(PY) ../02_train_vae.py --env_name doom_take_cover --new_model --epochs 1 --verbose 2
	cd $(DEMO_DIR) && ../$(PY) ../03_generate_rnn_data.py --env_name doom_take_cover
	cd $(DEMO_DIR) && ../$(PY) ../04_train_rnn.py --env_name doom_take_cover --new_model --epochs 2 --verbose 2
	cd $(DEMO_DIR) && ../$(PY) ../05_train_controller.py doom_take_cover --dream_mode 1 $(DEMO_RUN) --real_episodes 2
	cd $(DEMO_DIR) && ../$(PY) ../model.py doom_take_cover --filename ./controller/doom_take_cover.cma.1.4.best.json \
		--final_mode --num_episode 4
	@echo "demo video: $$(ls $(DEMO_DIR)/video/*.mp4)"

bench: venv
	$(PY) -m benchmarks.run

clean-demo:
	rm -rf $(DEMO_DIR)
