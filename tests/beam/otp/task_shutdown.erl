#!/usr/bin/env escript
%% Item 7: what Elixir's Task.shutdown/2 does with OTP's primitives (no Elixir here):
%% unlink, exit(Pid, shutdown), wait for the DOWN up to the timeout, then exit(Pid, kill).
%% A task that traps exits survives the shutdown signal and is killed after the timeout.
main(_) ->
    Me = self(),
    Pid = spawn_link(fun() -> process_flag(trap_exit, true), Me ! ready,
                              receive never -> ok end end),
    receive ready -> ok end,
    Ref = monitor(process, Pid),
    unlink(Pid),
    exit(Pid, shutdown),
    R = receive {'DOWN', Ref, _, _, Reason} -> Reason
        after 200 -> exit(Pid, kill),
                     receive {'DOWN', Ref, _, _, Reason} -> {after_timeout, Reason} end
        end,
    io:format("trapping task: ~p~n", [R]).
