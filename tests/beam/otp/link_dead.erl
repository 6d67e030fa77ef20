#!/usr/bin/env escript
%% Item 4: link/1 to a dead pid raises error:noproc (not trapping), and delivers
%% {'EXIT', Pid, noproc} when trapping.
main(_) ->
    {Pid, Ref} = spawn_monitor(fun() -> ok end),
    receive {'DOWN', Ref, _, _, _} -> ok end,
    try link(Pid) of V -> io:format("link returned ~p~n", [V])
    catch Class:Reason -> io:format("link raised ~p:~p~n", [Class, Reason]) end,
    process_flag(trap_exit, true),
    io:format("trapping link returned ~p~n", [link(Pid)]),
    receive M -> io:format("then got ~p~n", [M]) after 100 -> io:format("nothing~n") end.
