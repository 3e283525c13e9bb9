"""L2A (Feng et al., AAAI 2021): the learned augmenter and Algorithm 1.

One module per part of the method, one function per equation (its docstring gives it):

* ``static`` -- the static distribution P_s(z|x) = P(d|x) P(o|d,x) prod P(w_i|o,d,x):
  ``log_p_distance`` (P(d|x)), ``log_p_positions`` (P(o|d,x)), ``log_p_fill``
  (P(w|o,d,x)), ``StaticDistribution`` (sampling z);
* ``generator`` -- G_theta and its loss L_G (``l2a_loss``);
* ``selector`` -- pi_phi: ``state_features`` (state), ``reward``, ``discounted_returns``
  (return), ``reinforce_loss``, ``Selector`` (act, update);
* ``kd`` -- L_KD = L_att + L_hidden + L_dark (``attention_mse``, ``hidden_mse``,
  ``dark_loss``, ``kd_loss``);
* ``reward`` -- version 2's reward, the change of the dev log-likelihood, with its
  standard error (``DevReward``, ``signal_to_noise``);
* ``episode`` -- one episode's student steps with the selector and their
  diagnostics (``run_episode``);
* ``pool`` -- an episode's augmented pool and the sample gallery;
* ``algorithm`` -- Algorithm 1 (``run_l2a``), versions 1 and 2;
* ``corrupt`` -- the real-data probe: wrong teacher targets on a share of the pool;
* ``toy`` -- a toy task with a known answer for the selector, and its budget study;
* ``credit`` -- our extension: per-sample credit for the selector (first-order effect
  of a step on one sample on the dev log-likelihood, at the output layer).

Nothing is imported here, so ``l2a_lib.losses`` can read ``l2a.kd`` without pulling in
the rest of the method.
"""
