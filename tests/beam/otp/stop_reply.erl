#!/usr/bin/env escript
%% Item 5: {stop, Reason, Reply, State}: terminate runs before the reply is sent.
-module(stop_reply).
-mode(compile).
-behaviour(gen_server).
-export([main/1, init/1, handle_call/3, handle_cast/2, terminate/2]).

main(_) ->
    {ok, Pid} = gen_server:start(?MODULE, self(), []),
    io:format("reply: ~p~n", [gen_server:call(Pid, go)]),
    receive cleaned_up -> io:format("terminate had run when the reply came~n")
    after 0 -> io:format("terminate had not run yet~n") end.

init(Me) -> {ok, Me}.
handle_call(go, _From, Me) -> {stop, normal, done, Me}.
handle_cast(_, S) -> {noreply, S}.
terminate(_Reason, Me) -> Me ! cleaned_up, ok.
