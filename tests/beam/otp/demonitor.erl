#!/usr/bin/env escript
%% Item 8: demonitor/1 returns true always; demonitor/2 with info says whether it was active.
main(_) ->
    {Pid, _} = spawn_monitor(fun() -> receive _ -> ok end end),
    R1 = monitor(process, Pid),
    io:format("demonitor active: ~p~n", [demonitor(R1)]),
    io:format("demonitor again: ~p~n", [demonitor(R1)]),
    R2 = monitor(process, Pid),
    io:format("demonitor info active: ~p~n", [demonitor(R2, [info])]),
    io:format("demonitor info again: ~p~n", [demonitor(R2, [info])]),
    R3 = monitor(process, Pid),
    exit(Pid, kill),
    receive {'DOWN', R3, _, _, _} -> ok end,
    io:format("demonitor fired: ~p~n", [demonitor(R3)]),
    io:format("demonitor info fired: ~p~n", [demonitor(R3, [info])]),
    R4 = monitor(process, spawn(fun() -> ok end)),
    timer:sleep(20),
    io:format("demonitor flush,info with Down queued: ~p~n", [demonitor(R4, [flush, info])]),
    receive M -> io:format("left: ~p~n", [M]) after 0 -> io:format("mailbox empty~n") end.
